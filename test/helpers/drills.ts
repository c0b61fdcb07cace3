import type {ChildProcess} from 'node:child_process'
import {type ExpectStatic} from 'vitest'

import type {KillLeaderReport} from '../../src/lib/chaos/kill-leader.js'
import type {ClusterKind} from '../../src/lib/cluster/types.js'
import {runCli, spawnCli, waitForExit, waitForOutput} from './cli.js'
import {leaderPort, LeaderTimeline} from './leader-watch.js'

/** The recovery bounds the issue sets: a new leader within 5 s on ZooKeeper and etcd, 30 s on Consul. */
export const RECOVERY_BOUND_MS: Record<ClusterKind, number> = {zk: 5000, etcd: 5000, consul: 30_000}
/** How far svc's new-leader time may be from the test's own observation (both poll every 50 ms). */
export const AGREEMENT_TOLERANCE_MS = 1500

const portOf = (address: string): number => Number(address.slice(address.lastIndexOf(':') + 1))

export interface DrillRun {
  report: KillLeaderReport
  stderr: string
  timeline: LeaderTimeline
  oldLeaderPort: number
}

/**
 * Registers one instance through a member that is not the leader (a Consul registration lives on its agent),
 * runs `svc chaos kill-leader --yes --json` with `args`, while the test records the leader itself.
 */
export async function killLeaderDrill(
  kind: ClusterKind,
  ports: number[],
  uriFor: (ports: number[]) => string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<DrillRun & {registered: ChildProcess; service: string}> {
  const oldLeaderPort = await leaderPort(kind, ports)
  if (oldLeaderPort === undefined) throw new Error(`no ${kind} leader on ${ports.join(',')}`)
  const follower = ports.find((p) => p !== oldLeaderPort)!
  const service = `drill-${kind}-${Date.now().toString(36)}`
  const registerUri = kind === 'consul' ? uriFor([follower]) : uriFor(ports)
  const registered = spawnCli(['register', service, '--port', '9', '--address', '127.0.0.1', '-b', registerUri], env)
  await waitForOutput(registered, /^registered /, 20_000)
  const timeline = new LeaderTimeline(kind, ports)
  try {
    const result = await runCli(['chaos', 'kill-leader', '-b', uriFor(ports), '--yes', '--json', ...args], {
      env,
      timeoutMs: 120_000,
    })
    if (result.code !== 0 && !result.stdout.trim().startsWith('{'))
      throw new Error(`kill-leader exited ${result.code}: ${result.stderr}`)
    return {
      report: JSON.parse(result.stdout) as KillLeaderReport,
      stderr: result.stderr,
      timeline,
      oldLeaderPort,
      registered,
      service,
    }
  } finally {
    await timeline.stop()
  }
}

export async function stopProcess(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return
  child.kill('SIGTERM')
  await waitForExit(child, 20_000).catch(() => child.kill('SIGKILL'))
}

/** What every kill-leader drill must show, checked against the test's own observation of the leader. */
export function expectRecovered(expect: ExpectStatic, kind: ClusterKind, run: DrillRun, restarted: boolean): void {
  const {report, timeline, oldLeaderPort} = run
  expect(report.ok, `${report.problems.join('; ')}\n${run.stderr}`).toBe(true)
  expect(portOf(report.leader.address)).toBe(oldLeaderPort)
  expect(report.newLeader).toBeDefined()
  expect(report.newLeader!.address).not.toBe(report.leader.address)
  expect(report.newLeaderMs).toBeLessThan(RECOVERY_BOUND_MS[kind])
  expect(report.writes.ackedBeforeFault).toBeGreaterThan(0)
  expect(report.writes.lost).toBe(0)
  expect(report.registrations.before).toBeGreaterThanOrEqual(1)
  expect(report.registrations.missing).toEqual([])
  // the test saw the same new leader at about the same time
  const faultAt = Date.parse(report.faultAt)
  const seen = timeline.firstOtherThan(oldLeaderPort, faultAt)
  expect(seen, `the test never saw a new leader: ${JSON.stringify(timeline.seen)}`).toBeDefined()
  expect(seen!.port).toBe(portOf(report.newLeader!.address))
  expect(Math.abs(Date.parse(report.newLeaderAt!) - seen!.at)).toBeLessThan(AGREEMENT_TOLERANCE_MS)
  if (restarted) {
    expect(report.restart?.error).toBeUndefined()
    expect(report.restart?.rejoinMs).toBeTypeOf('number')
    expect(report.restart?.caughtUpMs).toBeTypeOf('number')
    // the old leader is back, as a follower
    expect(timeline.seen.some((s) => s.at > faultAt && s.port === oldLeaderPort)).toBe(false)
  }
}
