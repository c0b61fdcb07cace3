import {mkdirSync, mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import net from 'node:net'
import {setTimeout as sleep} from 'node:timers/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'

import {ROOT, runCli, spawnCli, waitForExit, waitForOutput} from '../helpers/cli.js'

const root = mkdtempSync(path.join(tmpdir(), 'svc-habits-'))
const env = {SVC_HOME: path.join(root, 'home'), SVC_BACKEND: '', CONSUL_HTTP_ADDR: '', ETCDCTL_ENDPOINTS: ''}
const manifest = JSON.parse(readFileSync(path.join(ROOT, 'oclif.manifest.json'), 'utf8')) as {
  commands: Record<string, {hidden?: boolean}>
}
const commandIds = Object.entries(manifest.commands)
  .filter(([, c]) => !c.hidden)
  .map(([id]) => id.split(':'))

/** A config home holding `config` as svc's config file. */
function configHome(config: unknown): string {
  const dir = mkdtempSync(path.join(root, 'config-'))
  mkdirSync(path.join(dir, 'svc'))
  writeFileSync(path.join(dir, 'svc', 'config.json'), typeof config === 'string' ? config : JSON.stringify(config))
  return dir
}

const STACK = /\n\s+at .+:\d+:\d+/

interface Case {
  args: string[]
  env?: Record<string, string>
  code: number
  stdout?: RegExp
  stderr?: RegExp
  /** A usage or runtime error: exactly one line on stderr, and nothing on stdout. */
  oneLine?: boolean
}

/** Every case of issue 16 with its command, as a user types it. */
const CASES: Array<[string, Case]> = [
  ['svc version', {args: ['version'], code: 0, stdout: /^svc-discovery\/\d+\.\d+\.\d+ /}],
  ['svc -v', {args: ['-v'], code: 0, stdout: /^svc-discovery\/\d+\.\d+\.\d+ /}],
  ['svc --version', {args: ['--version'], code: 0, stdout: /^svc-discovery\/\d+\.\d+\.\d+ /}],
  [
    'a typo suggests the command',
    {args: ['reslove', 'web'], code: 2, stderr: /did you mean: svc resolve web\?/, oneLine: true},
  ],
  ['a topic typo', {args: ['cluster', 'upp'], code: 2, stderr: /did you mean: svc cluster up\?/, oneLine: true}],
  [
    "registrator's positional URI",
    {
      args: ['agent', 'consul://127.0.0.1:1'],
      code: 2,
      stderr: /use: svc agent --backend consul:\/\/127\.0\.0\.1:1$/m,
      oneLine: true,
    },
  ],
  [
    "registrator's single-dash flag",
    {args: ['agent', '-internal'], code: 2, stderr: /long flags take two dashes: --internal$/m, oneLine: true},
  ],
  [
    'svc cluster lists its commands',
    {args: ['cluster'], code: 0, stdout: /cluster down[\s\S]*cluster status[\s\S]*cluster up/},
  ],
  ['svc chaos lists its commands', {args: ['chaos'], code: 0, stdout: /chaos kill-instance[\s\S]*chaos kill-leader/}],
  [
    'topic descriptions',
    {args: ['--help'], code: 0, stdout: /cluster\s+Run local ZooKeeper[\s\S]*config\s+Saved backend settings/},
  ],
  [
    'a bare number as a duration',
    {
      args: ['proxy', '--connect-timeout', '3000000'],
      code: 2,
      stderr: /--connect-timeout: invalid duration "3000000" \(no unit\): write it as 3000000ms/,
      oneLine: true,
    },
  ],
  [
    'a duration that is no duration',
    {
      args: ['register', 'web', '--port', '80', '--check-interval', 'banana'],
      code: 2,
      stderr: /--check-interval: invalid duration "banana"/,
      oneLine: true,
    },
  ],
  [
    '--dry-run: a bad address',
    {
      args: ['register', 'web', '--port', '80', '--address', 'not an ip', '--dry-run'],
      code: 2,
      stderr: /invalid address "not an ip"/,
      oneLine: true,
    },
  ],
  [
    '--dry-run: a bad id',
    {
      args: ['register', 'web', '--port', '80', '--id', 'a/b', '--dry-run'],
      code: 2,
      stderr: /invalid instance id "a\/b"/,
      oneLine: true,
    },
  ],
  [
    '--dry-run: an empty tag',
    {
      args: ['register', 'web', '--port', '80', '--tag', '', '--dry-run'],
      code: 2,
      stderr: /invalid tag ""/,
      oneLine: true,
    },
  ],
  [
    '--dry-run --json: one line with id and tags',
    {
      args: ['register', 'web', '--port', '80', '--tag', 'v2', '--dry-run', '--json'],
      code: 0,
      stdout: /^\{"service":"web","id":"web:127\.0\.0\.1:80","address":"127\.0\.0\.1","port":80,"tags":\["v2"\].*\}\n$/,
    },
  ],
  [
    '--meta weight=abc',
    {
      args: ['register', 'web', '--port', '80', '--meta', 'weight=abc', '--dry-run'],
      code: 2,
      stderr: /invalid --meta weight="abc"/,
      oneLine: true,
    },
  ],
  [
    '--meta weight=-1',
    {
      args: ['register', 'web', '--port', '80', '--meta', 'weight=-1', '--dry-run'],
      code: 2,
      stderr: /invalid --meta weight="-1"/,
      oneLine: true,
    },
  ],
  [
    'a port out of range',
    {
      args: ['register', 'web', '--port', '99999'],
      code: 2,
      stderr: /^Error: --port: invalid port "99999": use an integer from 1 to 65535\n$/,
      oneLine: true,
    },
  ],
  [
    'a route without =',
    {
      args: ['proxy', '--route', 'api'],
      code: 2,
      stderr: /^Error: invalid --route "api": write it as PREFIX=SERVICE/,
      oneLine: true,
    },
  ],
  [
    '--workers 0',
    {
      args: ['proxy', '--workers', '0'],
      code: 2,
      stderr: /--workers: Expected an integer greater than or equal to 1/,
      oneLine: true,
    },
  ],
  [
    'an unknown flag',
    {args: ['resolve', '--bogus'], code: 2, stderr: /^Error: Nonexistent flag: --bogus\n$/, oneLine: true},
  ],
  [
    '--pick bogus lists the strategies',
    {
      args: ['resolve', 'web', '--pick', 'bogus'],
      code: 2,
      stderr: /unknown --pick strategy "bogus": use one of: random, round-robin, first/,
      oneLine: true,
    },
  ],
  [
    'watch -s without tree',
    {args: ['watch', '-s', 'web'], code: 2, stderr: /--service \(-s\) goes with "tree"/, oneLine: true},
  ],
  [
    'a bad SVC_BACKEND is named as the variable',
    {
      args: ['resolve'],
      env: {SVC_BACKEND: 'nope'},
      code: 2,
      stderr: /^Error: SVC_BACKEND: unknown backend "nope"/,
      oneLine: true,
    },
  ],
  ['-b ""', {args: ['resolve', '-b', ''], code: 2, stderr: /--backend is empty/, oneLine: true}],
  [
    'nothing registered is a runtime result, exit 1',
    {args: ['resolve', 'nothere'], code: 1, stderr: /no instance of "nothere" is registered/, oneLine: true},
  ],
  [
    'SVC_HOME relative is shown resolved',
    {
      args: ['resolve', 'web'],
      env: {SVC_HOME: path.relative(ROOT, path.join(root, 'rel'))},
      code: 1,
      stderr: new RegExp(`local://${path.join(root, 'rel')}/registry`),
      oneLine: true,
    },
  ],
  [
    'config set validates with the flag parser',
    {
      args: ['config', 'set', 'backend', 'zk://h:99999'],
      env: {XDG_CONFIG_HOME: path.join(root, 'cfg-set')},
      code: 2,
      stderr: /invalid port "99999" in backend/,
      oneLine: true,
    },
  ],
  [
    'a stray key in the config file',
    {
      args: ['resolve'],
      env: {XDG_CONFIG_HOME: configHome({backend: 42})},
      code: 2,
      stderr: /config\.json is malformed: unknown key "backend" at the top level/,
      oneLine: true,
    },
  ],
  [
    'a bad value in a profile names the profile and the file',
    {
      args: ['resolve', '--profile', 'prod'],
      env: {XDG_CONFIG_HOME: configHome({profiles: {prod: {backend: 'zk://h:99999'}}})},
      code: 2,
      stderr:
        /invalid backend in profile "prod" of \/.+\/config\.json: .*fix it with: svc config set backend VALUE --profile prod/,
      oneLine: true,
    },
  ],
  [
    'TLS flags from a profile are blamed on the profile',
    {
      args: ['resolve', '--profile', 'prod'],
      env: {XDG_CONFIG_HOME: configHome({profiles: {prod: {backend: 'etcd://127.0.0.1:1', cacert: '/ca.pem'}}})},
      code: 2,
      stderr: /is plain \(from the config: backend in profile "prod" of .+; cacert in profile "prod" of .+\)/,
      oneLine: true,
    },
  ],
  [
    'the hint names --backend',
    {
      args: ['resolve', '-b', 'consul://127.0.0.1:1'],
      code: 1,
      stderr: /that --backend names their client addresses/,
      oneLine: true,
    },
  ],
  [
    'the hint names SVC_BACKEND',
    {
      args: ['resolve'],
      env: {SVC_BACKEND: 'consul://127.0.0.1:1'},
      code: 1,
      stderr: /that SVC_BACKEND names their client addresses/,
      oneLine: true,
    },
  ],
  [
    'the hint names CONSUL_HTTP_ADDR',
    {
      args: ['resolve', '-b', 'consul'],
      env: {CONSUL_HTTP_ADDR: '127.0.0.1:1'},
      code: 1,
      stderr: /that CONSUL_HTTP_ADDR names their client addresses/,
      oneLine: true,
    },
  ],
  [
    'the hint names the profile and its file',
    {
      args: ['resolve', '--profile', 'lab'],
      env: {XDG_CONFIG_HOME: configHome({profiles: {lab: {backend: 'consul://127.0.0.1:1'}}})},
      code: 1,
      stderr: /that backend in profile "lab" of \/.+\/config\.json names their client addresses/,
      oneLine: true,
    },
  ],
  ...commandIds.flatMap((id): Array<[string, Case]> => [
    [`svc ${id.join(' ')} -h`, {args: [...id, '-h'], code: 0, stdout: /^USAGE|\nUSAGE\n/}],
    [`svc ${id.join(' ')} --help`, {args: [...id, '--help'], code: 0, stdout: /\nUSAGE\n[\s\S]*EXAMPLES|\nUSAGE\n/}],
  ]),
]

describe('the CLI habits its users expect (issue 16)', () => {
  it.each(CASES)('%s', async (_name, c) => {
    const result = await runCli(c.args, {env: {...env, ...c.env}, timeoutMs: 30_000})
    expect({code: result.code, stderr: result.stderr}).toMatchObject({code: c.code})
    if (c.stdout) expect(result.stdout).toMatch(c.stdout)
    if (c.stderr) expect(result.stderr).toMatch(c.stderr)
    expect(result.stderr).not.toMatch(STACK)
    expect(result.stderr).not.toContain('See more help with --help')
    expect(result.stderr).not.toContain('›')
    if (c.oneLine) {
      expect(result.stderr.trimEnd().split('\n')).toHaveLength(1)
      expect(result.stdout).toBe('')
    }

    if (c.code === 0) expect(result.stderr).toBe('')
  })
})

describe('NDJSON streams', () => {
  const children: Array<ReturnType<typeof spawnCli>> = []
  const servers: net.Server[] = []
  afterAll(async () => {
    for (const child of children) child.kill('SIGTERM')
    await Promise.all(children.map((c) => waitForExit(c)))
    for (const server of servers) server.close()
  })

  it('register --json prints registered and deregistered, one compact object a line', async () => {
    const child = spawnCli(['register', 'ndjson', '--port', '8081', '--json'], env)
    children.push(child)
    const first = await waitForOutput(child, /^\{/)
    const registered = JSON.parse(first) as Record<string, unknown>
    expect(Object.keys(registered).slice(0, 3)).toEqual(['ts', 'type', 'service'])
    expect(registered).toMatchObject({type: 'registered', service: 'ndjson', instance: {id: 'ndjson:127.0.0.1:8081'}})
    let stdout = `${first}\n`
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString()
    })
    child.kill('SIGTERM')
    expect(await waitForExit(child)).toBe(0)
    const last = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>
    expect(last).toMatchObject({type: 'deregistered', service: 'ndjson', id: 'ndjson:127.0.0.1:8081'})
  })

  it('watch --json: a changed event carries the previous instance', async () => {
    const server = net.createServer((socket) => socket.destroy())
    servers.push(server)
    await new Promise<void>((resolve) => {
      server.listen(0, '127.0.0.1', resolve)
    })
    const {port} = server.address() as net.AddressInfo
    const watch = spawnCli(['watch', 'flappy', '--json'], env)
    children.push(watch)
    // the watch prints nothing on stdout for an empty snapshot: give it time to start
    await sleep(1500)
    const register = spawnCli(
      ['register', 'flappy', '--port', String(port), '--check-tcp', '--check-interval', '300ms'],
      env,
    )
    children.push(register)
    await waitForOutput(watch, /"type":"added"/)
    server.close()
    const line = await waitForOutput(watch, /"type":"changed"/)
    const changed = JSON.parse(line) as {previous?: {health: string}; instance: {health: string}}
    expect(changed.previous?.health).toBe('passing')
    expect(changed.instance.health).toBe('critical')
  })
})
