import {existsSync, mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'

import type {ClusterView} from '../../src/lib/cluster/named.js'
import type {ClusterKind} from '../../src/lib/cluster/types.js'
import {isAlive} from '../../src/lib/cluster/process.js'
import {eventually, runCli, spawnCli, waitForExit} from '../helpers/cli.js'
import {expectRecovered, killLeaderDrill, stopProcess} from '../helpers/drills.js'
import {leaderPort} from '../helpers/leader-watch.js'

// Clusters started by `svc cluster up` (the built binary), one per backend, each drilled once and taken down.
const home = mkdtempSync(path.join(tmpdir(), 'svc-chaos-home-'))
const env = {SVC_HOME: home}

afterAll(async () => {
  for (const kind of ['zk', 'etcd', 'consul'])
    await runCli(['cluster', 'down', '--name', `drill-${kind}`], {env, timeoutMs: 60_000})
  rmSync(home, {recursive: true, force: true})
}, 120_000)

const uriFor =
  (kind: ClusterKind) =>
  (ports: number[]): string =>
    `${kind}://${ports.map((p) => `127.0.0.1:${p}`).join(',')}${kind === 'consul' ? '' : '/services'}`

describe('svc cluster up, then svc chaos kill-leader --restart-after', () => {
  it.for(['zk', 'etcd', 'consul'] as const)('%s', async (kind) => {
    const name = `drill-${kind}`
    const up = await runCli(['cluster', 'up', '--backend', kind, '--name', name, '--json'], {env, timeoutMs: 120_000})
    expect(up.code, up.stderr).toBe(0)
    const view = JSON.parse(up.stdout) as ClusterView
    expect(view.members).toHaveLength(3)
    expect(view.members.every((m) => m.up && typeof m.pid === 'number')).toBe(true)
    expect(existsSync(path.join(home, 'clusters', `${name}.json`))).toBe(true)
    const ports = view.members.map((m) => Number(m.address.split(':')[1]))
    // the servers outlive `svc cluster up`, and answer
    expect(await leaderPort(kind, ports)).toBeTypeOf('number')

    const again = await runCli(['cluster', 'up', '--backend', kind, '--name', name], {env})
    expect(again.code).toBe(2)
    expect(again.stderr).toMatch(
      new RegExp(
        `^Error: cluster "${name}" is already running .*: stop and remove it with: svc cluster down --name ${name}`,
        'm',
      ),
    )

    const refused = await runCli(['chaos', 'kill-leader', '-b', uriFor(kind)(ports)], {env})
    expect(refused.code).toBe(2)
    expect(refused.stderr).toMatch(/will send SIGKILL to the leader .*: member \S+ of svc cluster/)
    expect(refused.stderr.trim().split('\n').at(-1)).toBe(
      'Error: a drill needs a confirmation and there is no terminal to ask on: pass --yes to run it',
    )

    const run = await killLeaderDrill(kind, ports, uriFor(kind), ['--restart-after', '2s'], env)
    try {
      expect(run.report.target).toMatchObject({kind: 'member', cluster: name})
      expectRecovered(expect, kind, run, true)
    } finally {
      await stopProcess(run.registered)
    }

    const status = await runCli(['cluster', 'status', '--name', name, '--json'], {env})
    const after = JSON.parse(status.stdout) as ClusterView
    expect(after.members.every((m) => m.up)).toBe(true)
    expect(after.members.filter((m) => m.role === 'leader')).toHaveLength(1)

    const down = await runCli(['cluster', 'down', '--name', name], {env, timeoutMs: 60_000})
    expect(down.code, down.stderr).toBe(0)
    expect(down.stdout).toMatch(new RegExp(`^stopped ${kind} cluster "${name}"`))
    expect(existsSync(path.join(home, 'clusters', name))).toBe(false)
    expect(existsSync(path.join(home, 'clusters', `${name}.json`))).toBe(false)
    for (const m of after.members) if (m.pid !== undefined) expect(isAlive(m.pid)).toBe(false)
  })

  it('names the Debian package when a server binary is missing', async () => {
    const result = await runCli(['cluster', 'up', '--backend', 'etcd', '--name', 'nobin'], {
      env: {...env, PATH: path.join(home, 'empty-path')},
    })
    expect(result.code).toBe(2)
    expect(result.stderr.trim().split('\n').at(-1)).toBe(
      'Error: etcd is not installed (no etcd on PATH): install the Debian package etcd-server: run scripts/install-backends.sh',
    )
  })

  it('stops the members it started when interrupted during up, and leaves no cluster behind', async () => {
    const child = spawnCli(['cluster', 'up', '--backend', 'zk', '--name', 'interrupted'], env)
    // zk members take seconds to elect: interrupt once all three were started
    const started: number[] = []
    child.stderr!.on('data', (d: Buffer) => {
      for (const m of d.toString().matchAll(/started \S+ \(pid (\d+)/g)) started.push(Number(m[1]))
    })
    await eventually(async () => started.length === 3, 30_000)
    child.kill('SIGINT')
    expect(await waitForExit(child, 30_000)).not.toBe(0)
    for (const pid of started) expect(isAlive(pid)).toBe(false)
    const status = await runCli(['cluster', 'status', '--name', 'interrupted'], {env})
    expect(status.code).not.toBe(0)
    expect(existsSync(path.join(home, 'clusters', 'interrupted'))).toBe(false)
  })

  it('reports a cluster it cannot reach in one line', async () => {
    const result = await runCli(['chaos', 'kill-leader', '-b', 'etcd://127.0.0.1:1'], {env})
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/^Error: no etcd member answers at 127\.0\.0\.1:1 .*: check that the servers run/m)
  })
})
