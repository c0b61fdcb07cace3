import {randomBytes} from 'node:crypto'

import {sleep} from '../cluster/process.js'
import {errorMessage, UserError} from '../errors.js'
import {openRegistry} from '../registry/index.js'
import {type BackendSpec, describeBackend} from '../registry/spec.js'
import type {Registry} from '../registry/types.js'
import {
  type ClusterSpec,
  discoverLeader,
  memberLabel,
  type ObservedMember,
  type Observation,
  observeCluster,
} from './members.js'
import {checkRegistrations, type RegistrationCheck, snapshotRegistrations} from './registrations.js'
import {
  type DrillSignal,
  locateTarget,
  restartTarget,
  stopTarget,
  summarizeTarget,
  type Target,
  type TargetSummary,
} from './targets.js'
import {openProbeStore, retrying, summarizeWrites, WriteProbe, type WriteSummary} from './writes.js'
import {plural} from '../text.js'

export const PROBE_INTERVAL_MS = 50
/** How often the drill asks every member for its role while it waits for a new leader or a rejoin. */
const POLL_MS = 50
const POLL_TIMEOUT_MS = 400
/** Writes acknowledged before the fault give the read-back something to check. */
const WARM_UP_MS = 500

export interface MemberSummary {
  name: string
  address: string
  role: string
  up: boolean
}

export interface KillLeaderPlan {
  spec: ClusterSpec
  before: Observation & {leader: ObservedMember}
  target: Target
}

export interface KillLeaderReport {
  drill: 'kill-leader'
  backend: ClusterSpec['kind']
  uri: string
  signal: 'KILL' | 'TERM' | 'STOP'
  members: MemberSummary[]
  leader: {name: string; address: string}
  target: TargetSummary
  faultAt: string
  newLeader?: {name: string; address: string}
  newLeaderAt?: string
  /** From the signal to the first poll (every 50 ms) in which a majority agreed on a different leader. */
  newLeaderMs?: number
  writes: WriteSummary
  registrations: RegistrationCheck
  restart?: {
    at: string
    /** When it was restarted, after the fault. */
    afterMs: number
    how: string
    pid?: number
    /** From the restart to the first poll that saw it answer as a follower of the leader. */
    rejoinMs?: number
    /** From the restart until its log index reached the leader's (as read when it rejoined). */
    caughtUpMs?: number
    error?: string
  }
  notes: string[]
  problems: string[]
  ok: boolean
}

export function clusterSpec(spec: BackendSpec): ClusterSpec {
  if (spec.kind === 'local') {
    throw new UserError(
      'the local backend has no leader to kill',
      'name a cluster: --backend zk://h:p,h:p, etcd://h:p,h:p or consul://h:p,h:p (every member)',
    )
  }

  return spec
}

const summarizeMember = (m: ObservedMember): MemberSummary => ({
  name: m.name,
  address: m.address,
  role: m.up ? m.role : 'down',
  up: m.up,
})

/** Finds the members, the leader and what runs it; stops nothing. */
export async function planKillLeader(spec: ClusterSpec): Promise<KillLeaderPlan> {
  const before = await discoverLeader(spec)
  const target = await locateTarget(before.leader.host, before.leader.port)
  return {spec, before, target}
}

export interface KillLeaderOptions {
  signal: DrillSignal
  restartAfterMs?: number
  /** Bound on each wait: a new leader, registrations resolving, a rejoin. */
  timeoutMs: number
  log?: (message: string) => void
}

/**
 * Polls until a majority agrees on a leader other than `old`; undefined after the deadline, or once `old` leads
 * again after it was restarted (`restarted()` tells when) before the others elected anyone.
 */
async function waitForNewLeader(
  spec: ClusterSpec,
  old: ObservedMember,
  deadline: number,
  restarted: () => number | undefined,
): Promise<Observation | undefined> {
  while (Date.now() < deadline) {
    const observation = await observeCluster(spec, POLL_TIMEOUT_MS)
    if (observation.leader && observation.leader.address !== old.address) return observation
    const back = restarted()
    if (observation.leader && back !== undefined && observation.at > back) return undefined
    await sleep(POLL_MS)
  }

  return undefined
}

/** Polls until the member at `address` answers as a follower of the agreed leader, then until it caught up. */
async function waitForRejoin(
  spec: ClusterSpec,
  address: string,
  restartedAt: number,
  deadline: number,
): Promise<{rejoinMs?: number; caughtUpMs?: number}> {
  const result: {rejoinMs?: number; caughtUpMs?: number} = {}
  let target: bigint | undefined
  while (Date.now() < deadline) {
    const observation = await observeCluster(spec, POLL_TIMEOUT_MS)
    const me = observation.members.find((m) => m.address === address)
    const leader = observation.leader
    // back as a follower of the leader, or leading still (it came back before the others elected anyone)
    const follows = me?.role === 'follower' && (me.leaderId === undefined || me.leaderId === leader?.selfId)
    if (me?.up && leader && (follows || leader.address === address)) {
      result.rejoinMs ??= observation.at - restartedAt
      target ??= leader.logIndex
      if (target === undefined || (me.logIndex !== undefined && me.logIndex >= target)) {
        result.caughtUpMs = observation.at - restartedAt
        return result
      }
    }

    await sleep(POLL_MS)
  }

  return result
}

/** Restarts the target `afterMs` after the fault (once it was stopped), then measures its rejoin. */
async function restartLater(
  plan: KillLeaderPlan,
  opts: KillLeaderOptions,
  faultAt: number,
  afterMs: number,
  stopping: Promise<void>,
  log: (message: string) => void,
  problems: string[],
  onRestart: (at: number) => void,
): Promise<NonNullable<KillLeaderReport['restart']>> {
  const {spec, target} = plan
  const old = plan.before.leader
  await stopping.catch(() => {})
  const wait = faultAt + afterMs - Date.now()
  if (wait > 0) await sleep(wait)
  const restartedAt = Date.now()
  const restart: NonNullable<KillLeaderReport['restart']> = {
    at: new Date(restartedAt).toISOString(),
    afterMs: restartedAt - faultAt,
    how: '',
  }
  try {
    const restarting = restartTarget(target, opts.signal)
    onRestart(restartedAt)
    const result = await restarting
    restart.how = result.how
    if (result.pid !== undefined) restart.pid = result.pid
    log(`restarted ${old.name}: ${result.how}`)
    const rejoin = await waitForRejoin(spec, old.address, restartedAt, Date.now() + opts.timeoutMs)
    Object.assign(restart, rejoin)
    if (rejoin.rejoinMs === undefined) problems.push(`${old.name} did not rejoin within ${opts.timeoutMs} ms`)
    else if (rejoin.caughtUpMs === undefined) problems.push(`${old.name} did not catch up within ${opts.timeoutMs} ms`)
  } catch (error) {
    restart.error = errorMessage(error)
    problems.push(`restart failed: ${restart.error}`)
  }

  return restart
}

const SIGNAL_NAMES: Record<DrillSignal, KillLeaderReport['signal']> = {
  SIGKILL: 'KILL',
  SIGTERM: 'TERM',
  SIGSTOP: 'STOP',
}

/**
 * Runs the drill: a probe writes every 50 ms, the leader's process or container gets the signal, the members are
 * polled every 50 ms until a majority agrees on a different leader, the registrations seen before are checked,
 * the member is restarted after `restartAfterMs` (when given) and its rejoin measured, and every acknowledged
 * write is read back. Every wait is bounded by `timeoutMs`.
 */
export async function runKillLeader(plan: KillLeaderPlan, opts: KillLeaderOptions): Promise<KillLeaderReport> {
  const log = opts.log ?? (() => {})
  const {spec, before, target} = plan
  const oldLeader = before.leader
  const notes: string[] = []
  const problems: string[] = []
  const registry: Registry = await openRegistry(spec, {log() {}})
  const store = await openProbeStore(spec, `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`)
  const probe = new WriteProbe(store, PROBE_INTERVAL_MS)
  try {
    const registered = await snapshotRegistrations(registry)
    log(
      `${plural(registered.size, 'registered instance')} before the drill; probe writes to ${store.where} every ${PROBE_INTERVAL_MS} ms`,
    )
    probe.start()
    await sleep(WARM_UP_MS)

    const faultAt = Date.now()
    log(
      `sending SIG${SIGNAL_NAMES[opts.signal]} to the leader ${memberLabel(oldLeader)}: ${summarizeTarget(target).description}`,
    )
    const stopping = stopTarget(target, opts.signal)
    // the restart runs on its own clock, while the drill goes on measuring
    let restartedAt: number | undefined
    const restarting =
      opts.restartAfterMs === undefined
        ? undefined
        : restartLater(plan, opts, faultAt, opts.restartAfterMs, stopping, log, problems, (at) => {
            restartedAt = at
          })
    const elected = await waitForNewLeader(spec, oldLeader, faultAt + opts.timeoutMs, () => restartedAt)
    await stopping
    const report: KillLeaderReport = {
      drill: 'kill-leader',
      backend: spec.kind,
      uri: describeBackend(spec),
      signal: SIGNAL_NAMES[opts.signal],
      members: before.members.map((m) => summarizeMember(m)),
      leader: {name: oldLeader.name, address: oldLeader.address},
      target: summarizeTarget(target),
      faultAt: new Date(faultAt).toISOString(),
      newLeader: undefined,
      newLeaderAt: undefined,
      newLeaderMs: undefined,
      writes: summarizeWrites([], new Set(), faultAt, PROBE_INTERVAL_MS),
      registrations: {before: registered.size, resolving: 0, missing: []},
      restart: undefined,
      notes,
      problems,
      ok: false,
    }
    if (elected?.leader) {
      report.newLeader = {name: elected.leader.name, address: elected.leader.address}
      report.newLeaderAt = new Date(elected.at).toISOString()
      report.newLeaderMs = elected.at - faultAt
      log(`new leader ${elected.leader.name} after ${report.newLeaderMs} ms`)
    } else if (restartedAt !== undefined && Date.now() < faultAt + opts.timeoutMs) {
      problems.push(
        `no new leader: ${oldLeader.name} was back after ${restartedAt - faultAt} ms and still leads; give --restart-after more time than an election takes`,
      )
    } else problems.push(`no new leader within ${opts.timeoutMs} ms`)

    // let the probe see the cluster serve again before judging registrations
    const ackDeadline = Date.now() + opts.timeoutMs
    while (!probe.firstAckAfter(elected?.at ?? faultAt) && Date.now() < ackDeadline) await sleep(POLL_MS)
    report.registrations = await checkRegistrations(registry, registered, Math.min(opts.timeoutMs, 30_000))
    if (report.registrations.missing.length > 0)
      problems.push(`${report.registrations.missing.length} registrations no longer resolve`)

    if (restarting) report.restart = await restarting
    else if (opts.signal === 'SIGSTOP')
      notes.push(
        `${oldLeader.name} stays frozen: resume it with --restart-after next time, or SIGCONT / docker unpause`,
      )
    else notes.push(`${oldLeader.name} stays down: restart it yourself, or use --restart-after`)

    await probe.stop()
    let present: Set<number> | undefined
    try {
      present = await retrying(() => store.readAll(), Math.max(opts.timeoutMs, 20_000))
    } catch (error) {
      problems.push(`could not read the probe's writes back from ${store.where}: ${errorMessage(error)}`)
    }

    report.writes = summarizeWrites(probe.records, present, faultAt, PROBE_INTERVAL_MS)
    if (report.writes.ackedBeforeFault === 0) problems.push('no write was acknowledged before the fault')
    if (report.writes.lost > 0) problems.push(`${report.writes.lost} acknowledged writes are missing`)
    report.ok = problems.length === 0
    return report
  } finally {
    await probe.stop()
    await retrying(() => store.cleanup(), 10_000).catch((error: unknown) =>
      log(`could not remove ${store.where}: ${errorMessage(error)}`),
    )
    await Promise.allSettled([store.close(), registry.close()])
  }
}
