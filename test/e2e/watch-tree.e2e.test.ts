import {execFileSync, spawnSync} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'

import {type TestBackend, testBackends, uniqueService} from '../helpers/backends.js'
import {BIN, eventually, ROOT, spawnCli, waitForExit, waitForOutput} from '../helpers/cli.js'
import {hasTestCluster} from '../helpers/clusters.js'

// tmux comes with scripts/install-backends.sh; without it this test must fail, not pass silently
if (spawnSync('tmux', ['-V']).status !== 0) throw new Error('tmux is missing: run scripts/install-backends.sh')
const home = mkdtempSync(path.join(tmpdir(), 'svc-tree-e2e-'))
const socket = `svc-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`
const WAIT_MS = 20_000

/** Local always; the cluster backends when this run started them. */
function backends(): TestBackend[] {
  if (!['zk', 'etcd', 'consul'].every((kind) => hasTestCluster(kind as 'consul' | 'etcd' | 'zk')))
    return [{name: 'local', uri: `local://${mkdtempSync(path.join(tmpdir(), 'svc-local-'))}`}]
  return testBackends()
}

function tmux(...args: string[]): string {
  return execFileSync('tmux', ['-L', socket, ...args], {encoding: 'utf8', timeout: 5000})
}

const quote = (s: string): string => `'${s.replaceAll("'", String.raw`'\''`)}'`

describe('svc watch tree in a real terminal', () => {
  const running: Array<ReturnType<typeof spawnCli>> = []
  afterAll(async () => {
    for (const child of running) child.kill('SIGTERM')
    await Promise.all(running.map((c) => waitForExit(c).catch(() => null)))
    spawnSync('tmux', ['-L', socket, 'kill-server'], {timeout: 5000})
    // kill-server leaves the socket file behind
    rmSync(path.join(process.env.TMUX_TMPDIR ?? '/tmp', `tmux-${process.getuid?.() ?? 0}`, socket), {force: true})
    rmSync(home, {recursive: true, force: true})
  })

  it.each(backends())('shows instances, updates live and quits on q: $name', async (backend) => {
    const env = {SVC_HOME: home, SVC_BACKEND: backend.uri}
    const service = uniqueService('tree')
    const register = async (suffix: string, port: number): Promise<void> => {
      const child = spawnCli(
        ['register', service, '--port', String(port), '--address', '127.0.0.1', '--id', `${service}-${suffix}`],
        env,
      )
      running.push(child)
      await waitForOutput(child, /^registered /, WAIT_MS)
    }

    await register('a', 18_081)
    // Consul has no namespace per test: show only this test's service there
    const args = ['watch', 'tree', ...(backend.name === 'consul' ? ['--service', service] : [])]
    const session = `tree-${backend.name}`
    // the tree refuses to draw under CI; a real terminal is what this test is about
    const command = [
      `cd ${quote(ROOT)} &&`,
      `env -u CI SVC_HOME=${quote(home)} SVC_BACKEND=${quote(backend.uri)}`,
      `${quote(process.execPath)} ${quote(BIN)} ${args.map((a) => quote(a)).join(' ')};`,
      'echo "svc-exit=$?"; exec sleep 300',
    ].join(' ')
    tmux('new-session', '-d', '-s', session, '-x', '120', '-y', '40', command)
    const screen = (): string => tmux('capture-pane', '-p', '-t', session)
    const showing = (pattern: RegExp) => eventually(async () => pattern.test(screen()) && screen(), WAIT_MS, 100)

    // Consul reports its TTL check's health; the others publish passing at once
    const health = backend.name === 'consul' ? '(passing|critical)' : 'passing'
    const first = await showing(new RegExp(`${service}-a +127\\.0\\.0\\.1:18081 +${health}`))
    const lines = first.split('\n')
    expect(lines[0]).toMatch(/^svc watch( \S+)? {2}\S+ {2}connected · /)
    expect(lines[1]).toMatch(/^cluster {2}\S/)
    expect(first).toMatch(new RegExp(`▾ ${service} {2}1 instance: 1 ${health}`))
    expect(first).toMatch(/q quit/)
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(120)

    await register('b', 18_082)
    const updated = await showing(new RegExp(`${service}-b +127\\.0\\.0\\.1:18082 +${health}`))
    expect(updated).toMatch(new RegExp(`▾ ${service} {2}2 instances: `))
    if (backend.name === 'local') process.stderr.write(`[watch-tree e2e] frame:\n${updated}\n`)

    // keys reach it: fold the service with enter after selecting it
    tmux('send-keys', '-t', session, 'g', 'Enter')
    await showing(new RegExp(`▸ ${service} {2}2 instances`))

    tmux('send-keys', '-t', session, 'q')
    await showing(/^svc-exit=0$/m)
  })
})
