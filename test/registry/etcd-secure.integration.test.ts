import {type ChildProcess, execFile, spawn} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {allocatePorts} from '../../src/lib/cluster/ports.js'
import {formatError} from '../../src/lib/errors.js'
import {openRegistry} from '../../src/lib/registry/index.js'
import type {Registry} from '../../src/lib/registry/types.js'
import {type BackendFlagValues, specFromFlags} from '../../src/lib/registry/spec.js'
import {eventually, runCli, spawnCli, waitForExit, waitForOutput} from '../helpers/cli.js'

// A single etcd of this file's own (the shared test clusters are plain): TLS with a private CA, client certificates
// required (--client-cert-auth), and password auth with a user whose role covers only svc's prefix.
const PREFIX = '/svc-secure'
// etcdctl reads a password from stdin up to the first blank, so this one has none
const SVC_PASSWORD = 'pa:ss/w@rd%1'
const SVC_URI_AUTH = `svcuser:${encodeURIComponent(SVC_PASSWORD)}`
const OTHER_PASSWORD = 'other-pw-93'

let dir = ''
let endpoint = ''
let etcd: ChildProcess | undefined
const opened: Registry[] = []
const file = (name: string): string => path.join(dir, name)

function run(command: string, args: string[], opts: {env?: NodeJS.ProcessEnv; input?: string} = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, {cwd: dir, env: opts.env, timeout: 20_000}, (error, stdout, stderr) =>
      error ? reject(new Error(`${command} ${args.join(' ')}: ${error.message} ${stderr}`)) : resolve(stdout),
    )
    // a command that fails at once closes its stdin before the input is written
    child.stdin?.on('error', () => {})
    child.stdin?.end(opts.input ?? '')
  })
}

/** etcdctl as root: the root client certificate's CN names the user, so no password goes in its argv. */
function etcdctl(args: string[], input?: string): Promise<string> {
  const env = {
    PATH: process.env.PATH,
    ETCDCTL_API: '3',
    ETCDCTL_ENDPOINTS: endpoint,
    ETCDCTL_CACERT: file('ca.crt'),
    ETCDCTL_CERT: file('root.crt'),
    ETCDCTL_KEY: file('root.key'),
  }
  return run('etcdctl', args, {env, input})
}

const subject = (cn: string): string[] => ['-subj', `/CN=${cn}`]

/** A CA, a server certificate for 127.0.0.1, and client certificates for root (setup) and svc. */
async function makeCertificates(): Promise<void> {
  writeFileSync(
    file('ext.cnf'),
    '[server]\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n[client]\nextendedKeyUsage=clientAuth\n',
  )
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '2',
    ...subject('svc-test-ca'),
  ])
  for (const [name, ext] of [
    ['server', 'server'],
    ['root', 'client'],
    ['svc', 'client'],
  ] as const) {
    await run('openssl', [
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      ...subject(name),
    ])
    await run('openssl', [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      '2',
      '-extfile',
      'ext.cnf',
      '-extensions',
      ext,
    ])
  }
}

function tlsFlags(which: {ca: boolean; cert: boolean}): string[] {
  return [
    ...(which.ca ? ['--cacert', file('ca.crt')] : []),
    ...(which.cert ? ['--cert', file('svc.crt'), '--key', file('svc.key')] : []),
  ]
}

async function open(
  flags: BackendFlagValues,
  env: NodeJS.ProcessEnv = {},
): Promise<{registry: Registry; logs: string[]}> {
  const spec = specFromFlags(flags, env)
  if (spec.kind !== 'etcd') throw new Error('not an etcd spec')
  const logs: string[] = []
  const registry = await openRegistry(spec, {log: (m) => logs.push(m)})
  opened.push(registry)
  return {registry, logs}
}

const svcFlags = (auth = SVC_URI_AUTH): BackendFlagValues => ({
  backend: `etcds://${auth}@${endpoint.replace('https://', '')}${PREFIX}`,
  cacert: file('ca.crt'),
  cert: file('svc.crt'),
  key: file('svc.key'),
})

/** The one error line of a failed command (diagnostic `svc:` lines aside). */
function errorLines(stderr: string): string[] {
  return stderr
    .trim()
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('svc: '))
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'svc-etcd-secure-'))
  await makeCertificates()
  const [client, peer] = await allocatePorts(2)
  endpoint = `https://127.0.0.1:${client}`
  const peerUrl = `http://127.0.0.1:${peer}`
  etcd = spawn(
    'etcd',
    [
      '--name=s1',
      `--data-dir=${file('data')}`,
      `--listen-client-urls=${endpoint}`,
      `--advertise-client-urls=${endpoint}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=s1=${peerUrl}`,
      '--client-cert-auth',
      `--trusted-ca-file=${file('ca.crt')}`,
      `--cert-file=${file('server.crt')}`,
      `--key-file=${file('server.key')}`,
    ],
    {cwd: dir, stdio: ['ignore', 'ignore', 'ignore']},
  )
  await eventually(async () => /"revision"/.test(await etcdctl(['endpoint', 'status', '-w', 'json'])), 30_000, 200)
  // passwords go to etcdctl on stdin (--interactive=false), never in its argv
  await etcdctl(['user', 'add', 'root', '--interactive=false'], 'root-pw-never-used\n')
  await etcdctl(['user', 'grant-role', 'root', 'root'])
  await etcdctl(['user', 'add', 'svcuser', '--interactive=false'], `${SVC_PASSWORD}\n`)
  await etcdctl(['role', 'add', 'svc'])
  await etcdctl(['role', 'grant-permission', 'svc', '--prefix=true', 'readwrite', `${PREFIX}/`])
  await etcdctl(['user', 'grant-role', 'svcuser', 'svc'])
  await etcdctl(['user', 'add', 'other', '--interactive=false'], `${OTHER_PASSWORD}\n`)
  await etcdctl(['role', 'add', 'elsewhere'])
  await etcdctl(['role', 'grant-permission', 'elsewhere', '--prefix=true', 'readwrite', '/elsewhere/'])
  await etcdctl(['user', 'grant-role', 'other', 'elsewhere'])
  await etcdctl(['auth', 'enable'])
})

afterAll(async () => {
  await Promise.allSettled(opened.map((r) => r.close()))
  if (etcd?.pid !== undefined && etcd.exitCode === null) {
    etcd.kill('SIGKILL')
    await waitForExit(etcd, 10_000).catch(() => {})
  }

  if (dir) rmSync(dir, {recursive: true, force: true})
})

describe('etcd over TLS with client certificates and password auth', () => {
  it('registers and resolves through the library', async () => {
    const {registry} = await open(svcFlags())
    expect(registry.description).toBe(`etcds://svcuser:***@${endpoint.replace('https://', '')}${PREFIX}`)
    await registry.register({service: 'web', id: 'w1', address: '127.0.0.1', port: 8001})
    expect((await registry.listInstances('web')).map((i) => i.id)).toEqual(['w1'])
    expect(await etcdctl(['get', '--print-value-only', `${PREFIX}/web/w1`])).toMatch(/"address":"127.0.0.1"/)
    const cluster = await registry.cluster()
    expect(cluster.members.map((m) => m.reachable)).toEqual([true])
  })

  it('registers and resolves through the CLI, with ETCDCTL_* variables and flags', async () => {
    const hostPart = endpoint.replace('https://', '')
    const register = spawnCli(
      ['register', 'api', '--port', '9001', '--address', '127.0.0.1', '-b', `etcds://${hostPart}${PREFIX}`],
      {
        ETCDCTL_USER: `svcuser:${SVC_PASSWORD}`,
        ETCDCTL_CACERT: file('ca.crt'),
        ETCDCTL_CERT: file('svc.crt'),
        ETCDCTL_KEY: file('svc.key'),
      },
    )
    try {
      await waitForOutput(register, /^registered api/)
      const resolved = await runCli([
        'resolve',
        'api',
        '--json',
        '-b',
        `etcds://${SVC_URI_AUTH}@${hostPart}${PREFIX}`,
        ...tlsFlags({ca: true, cert: true}),
      ])
      expect(resolved.code).toBe(0)
      expect((JSON.parse(resolved.stdout) as Array<{port: number}>).map((i) => i.port)).toEqual([9001])
      expect(resolved.stderr).not.toMatch(/DeprecationWarning/)
      expect(resolved.stdout + resolved.stderr).not.toContain(SVC_PASSWORD)
      expect(resolved.stdout + resolved.stderr).not.toContain(encodeURIComponent(SVC_PASSWORD))
    } finally {
      register.kill('SIGTERM')
      await waitForExit(register)
    }
  })

  it.each([
    [
      'a wrong password',
      ['-b', `etcds://svcuser:wrong-pw@HOST${PREFIX}`, 'TLS:ca,cert'],
      /^Error: etcd refused the user name or password of user "svcuser": check user:password in the URI/,
    ],
    [
      'a missing client certificate',
      ['-b', `etcds://${SVC_URI_AUTH}@HOST${PREFIX}`, 'TLS:ca'],
      /^Error: TLS with etcd at 127\.0\.0\.1:\d+ failed: the server requires a client certificate: pass --cert and --key/,
    ],
    [
      'an untrusted server certificate',
      ['-b', `etcds://${SVC_URI_AUTH}@HOST${PREFIX}`, 'TLS:cert'],
      /^Error: TLS with etcd at 127\.0\.0\.1:\d+ failed: the server's certificate is not trusted .*: pass the CA that signed it with --cacert/,
    ],
    [
      'a user without permission on the prefix',
      ['-b', `etcds://other:${OTHER_PASSWORD}@HOST${PREFIX}`, 'TLS:ca,cert'],
      /^Error: etcd denied user "other" permission on \/svc-secure\/ \(etcdserver: permission denied\): grant its role readwrite/,
    ],
    [
      'no user at all',
      ['-b', `etcds://HOST${PREFIX}`, 'TLS:ca,cert'],
      /^Error: etcd denied a client without a user permission on \/svc-secure\/.*: etcd has authentication on: pass user:password/,
    ],
    [
      'a plain URI for a TLS server',
      ['-b', `etcd://${SVC_URI_AUTH}@HOST${PREFIX}`],
      /^Error: TLS with etcd at 127\.0\.0\.1:\d+ failed: the server speaks TLS: use etcds:\/\//,
    ],
  ])('reports %s in one line naming the fix', async (_label, args, expected) => {
    const hostPart = endpoint.replace('https://', '')
    // the table is built before the certificates exist: TLS:<which> stands for their flags
    const expanded = args.flatMap((a) =>
      a.startsWith('TLS:') ? tlsFlags({ca: a.includes('ca'), cert: a.includes('cert')}) : [a.replace('HOST', hostPart)],
    )
    const result = await runCli(['resolve', 'web', ...expanded])
    expect(result.code).not.toBe(0)
    const lines = errorLines(result.stderr)
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(expected)
    expect(result.stderr).not.toMatch(/^\s+at /m)
    for (const secret of ['wrong-pw', OTHER_PASSWORD, SVC_PASSWORD, encodeURIComponent(SVC_PASSWORD)])
      expect(result.stderr + result.stdout).not.toContain(secret)
  })

  it('skips a value that is not JSON, or JSON without an address, with one warning each', async () => {
    const junk = /skipping "?\/svc-secure\/web\/junk"?: it is not JSON$/
    await etcdctl(['put', `${PREFIX}/web/junk`, 'not json at all'])
    await etcdctl(['put', `${PREFIX}/web/half`, JSON.stringify({port: 80})])
    const {registry, logs} = await open(svcFlags())
    expect((await registry.listInstances('web')).map((i) => i.id)).toEqual(['w1'])
    expect((await registry.listServices()).find((s) => s.name === 'web')).toMatchObject({instances: 1})
    const skipped = logs.filter((l) => /skipping/.test(l))
    expect(skipped).toHaveLength(2)
    expect(skipped.filter((l) => junk.test(l))).toHaveLength(1)
    expect(skipped.filter((l) => /skipping "?\/svc-secure\/web\/half"?: it has no address$/.test(l))).toHaveLength(1)

    const watcher = await open(svcFlags())
    const stream = watcher.registry.watch('web')
    const first = await stream[Symbol.asyncIterator]().next()
    expect(first.value).toMatchObject({type: 'snapshot', instances: [{id: 'w1'}]})
    expect(watcher.logs.filter((l) => junk.test(l))).toHaveLength(1)
    await stream[Symbol.asyncIterator]().return?.()

    const hostPart = endpoint.replace('https://', '')
    const result = await runCli([
      'resolve',
      'web',
      '--json',
      '-b',
      `etcds://${SVC_URI_AUTH}@${hostPart}${PREFIX}`,
      ...tlsFlags({ca: true, cert: true}),
    ])
    expect(result.code).toBe(0)
    expect((JSON.parse(result.stdout) as Array<{id: string}>).map((i) => i.id)).toEqual(['w1'])
    expect(result.stderr.split('\n').filter((l) => junk.test(l))).toHaveLength(1)
  })

  it('says which TLS file it cannot use', async () => {
    const {registry} = await open({...svcFlags(), cacert: file('missing.crt')})
    await expect(registry.ping().catch(formatError)).resolves.toMatch(/cannot read --cacert .*missing\.crt \(ENOENT\)/)
    const mismatched = (await open({...svcFlags(), key: file('root.key')})).registry
    await expect(mismatched.ping().catch(formatError)).resolves.toMatch(
      /cannot use the TLS files \(.*key values mismatch\)/,
    )
  })
})
