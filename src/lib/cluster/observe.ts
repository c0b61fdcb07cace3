import {ExternalError, UserError} from '../errors.js'
import {consulDriver} from './consul.js'
import {type Driver, type MemberProbe, memberMarker} from './driver.js'
import {etcdDriver} from './etcd.js'
import {exitOf, isAlive, ownsProcess, processState, sleep, tailFile} from './process.js'
import {CLUSTER_HOST, type ClusterKind, type ClusterManifest, type MemberManifest, type MemberStatus} from './types.js'
import {zookeeperDriver} from './zookeeper.js'

const DRIVERS: Record<ClusterKind, Driver> = {zk: zookeeperDriver, etcd: etcdDriver, consul: consulDriver}

export function driverFor(kind: ClusterKind): Driver {
  return DRIVERS[kind]
}

const PROBE_TIMEOUT_MS = 2000
/** How often a wait for the cluster asks its members again. */
export const POLL_MS = 150

export const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`

export interface Observation {
  statuses: MemberStatus[]
  probes: MemberProbe[]
  /** The one leader that a majority of the members follows, if there is one. */
  leader?: number
}

export function memberAt(manifest: ClusterManifest, index: number): MemberManifest {
  const member = manifest.members[index]
  if (!member) {
    throw new UserError(
      `cluster ${manifest.name} has no member ${index}`,
      `members are numbered 0 to ${manifest.members.length - 1}`,
    )
  }

  return member
}

export async function observe(manifest: ClusterManifest): Promise<Observation> {
  const driver = driverFor(manifest.kind)
  // A frozen (SIGSTOPped) member would only time out: report it without asking.
  const probes = await Promise.all(
    manifest.members.map((m): Promise<MemberProbe> | MemberProbe =>
      ownsProcess(m.pid, memberMarker(m)) && processState(m.pid) === 'stopped'
        ? {up: false, detail: 'stopped (SIGSTOP)'}
        : driver.probe(m, PROBE_TIMEOUT_MS),
    ),
  )

  // Ids the members go by: static ones (Consul), else what each answering member said about itself (etcd).
  const byId = new Map<string, number>()
  for (const member of manifest.members) {
    const id = driver.staticId?.(member)
    if (id) byId.set(id, member.index)
  }

  for (const [i, probe] of probes.entries()) if (probe.selfId && !byId.has(probe.selfId)) byId.set(probe.selfId, i)

  const statuses = manifest.members.map((member, i): MemberStatus => {
    const probe = probes[i] ?? {up: false}
    let role = probe.role
    if (role === undefined) {
      if (!probe.up || !probe.leaderId) role = 'unknown'
      else role = probe.leaderId === probe.selfId ? 'leader' : 'follower'
    }

    if (!probe.up) role = 'unknown'
    const status: MemberStatus = {
      index: member.index,
      name: member.name,
      address: `${CLUSTER_HOST}:${member.clientPort}`,
      up: probe.up,
      role,
    }
    if (role === 'leader' || role === 'standalone') status.leaderIndex = i
    else if (probe.up && probe.leaderId !== undefined) {
      const leaderIndex = byId.get(probe.leaderId)
      if (leaderIndex !== undefined) status.leaderIndex = leaderIndex
    }

    if (ownsProcess(member.pid, memberMarker(member))) {
      status.pid = member.pid
      if (processState(member.pid) === 'stopped') status.detail = 'stopped (SIGSTOP)'
    } else if (!probe.up) {
      status.detail = member.pid === undefined ? 'not running' : 'its process is gone'
    }

    if (status.detail === undefined && probe.detail && (!probe.up || role === 'unknown')) status.detail = probe.detail
    return status
  })

  const obs: Observation = {statuses, probes}
  const leaders = statuses.filter((s) => s.up && (s.role === 'leader' || s.role === 'standalone'))
  if (leaders.length === 1) {
    const leader = (leaders[0] as MemberStatus).index
    const quorum = Math.floor(manifest.members.length / 2) + 1
    if (statuses.filter((s) => follows(s, leader)).length >= quorum) {
      obs.leader = leader
      // ZooKeeper followers do not name their leader; with one leader in the ensemble, it is theirs.
      for (const s of statuses) if (s.up && s.role === 'follower' && s.leaderIndex === undefined) s.leaderIndex = leader
    }
  }

  return obs
}

/** The member answers and follows `leader` (a ZooKeeper follower does not name its leader; its Mode suffices). */
function follows(s: MemberStatus, leader: number): boolean {
  if (!s.up) return false
  if (s.index === leader || s.leaderIndex === leader) return true
  return s.leaderIndex === undefined && s.role === 'follower'
}

/** Each member: whether it answers, its role, the leader it follows, its pid while its process lives. */
export async function clusterStatus(manifest: ClusterManifest): Promise<MemberStatus[]> {
  return (await observe(manifest)).statuses
}

function describeStatuses(statuses: readonly MemberStatus[]): string {
  return statuses.map((s) => `${s.name} ${s.up ? s.role : 'down'}${s.detail ? ` (${s.detail})` : ''}`).join(', ')
}

/** Waits until exactly one member leads and a majority follows it; resolves with the leader's index. */
export async function waitForLeader(manifest: ClusterManifest, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const obs = await observe(manifest)
    if (obs.leader !== undefined) return obs.leader
    if (Date.now() >= deadline) {
      throw new ExternalError(
        `${manifest.kind} cluster ${manifest.name} has no leader after ${seconds(timeoutMs)}: ${describeStatuses(obs.statuses)}`,
        `see the member logs under ${manifest.dir}`,
      )
    }

    await sleep(POLL_MS)
  }
}

export interface Verdict {
  ready: boolean
  reason: string
  /** The member to blame (whose log tail is quoted) when it never gets ready. */
  culprit?: number
  obs: Observation
}

export async function clusterVerdict(manifest: ClusterManifest): Promise<Verdict> {
  const obs = await observe(manifest)
  const down = obs.statuses.find((s) => !s.up)
  if (down)
    return {ready: false, reason: `${down.name} does not answer (${down.detail ?? 'down'})`, culprit: down.index, obs}
  if (obs.leader === undefined) return {ready: false, reason: `no leader: ${describeStatuses(obs.statuses)}`, obs}
  const leader = obs.leader
  const astray = obs.statuses.find((s) => !follows(s, leader))
  if (astray) return {ready: false, reason: `${astray.name} does not follow the leader`, culprit: astray.index, obs}
  const unjoined = obs.probes.findIndex((p) => p.joined === false)
  if (unjoined !== -1) {
    return {
      ready: false,
      reason: `${manifest.members[unjoined]?.name} has not joined (${obs.probes[unjoined]?.detail})`,
      culprit: unjoined,
      obs,
    }
  }

  const driver = driverFor(manifest.kind)
  const pending = await driver.clusterReady?.(manifest, leader, PROBE_TIMEOUT_MS)
  if (pending) return {ready: false, reason: pending, culprit: leader, obs}
  return {ready: true, reason: 'ready', obs}
}

export async function memberVerdict(manifest: ClusterManifest, index: number): Promise<Verdict> {
  const obs = await observe(manifest)
  const me = obs.statuses[index] as MemberStatus
  if (!me.up) return {ready: false, reason: `${me.name} does not answer (${me.detail ?? 'down'})`, culprit: index, obs}
  if (obs.leader === undefined)
    return {ready: false, reason: `no leader: ${describeStatuses(obs.statuses)}`, culprit: index, obs}
  if (!follows(me, obs.leader))
    return {ready: false, reason: `${me.name} does not follow the leader yet`, culprit: index, obs}
  if (obs.probes[index]?.joined === false)
    return {ready: false, reason: `${me.name} has not rejoined`, culprit: index, obs}
  return {ready: true, reason: 'ready', obs}
}

/** An error that quotes the tail of the member's log. */
export async function failure(
  manifest: ClusterManifest,
  index: number | undefined,
  summary: string,
): Promise<ExternalError> {
  const member = manifest.members[index ?? 0]
  let message = summary
  if (member) {
    const tail = await tailFile(member.logFile, 25)
    message += `\n--- last lines of ${member.name}'s log (${member.logFile}):\n${tail || '(empty)'}`
  }

  return new ExternalError(message, `see the member logs under ${manifest.dir}`)
}

/** A member we spawned exited: its index, and how. */
export function exitedMember(
  manifest: ClusterManifest,
  indexes: readonly number[],
): {index: number; how: string} | undefined {
  for (const index of indexes) {
    const pid = manifest.members[index]?.pid
    if (pid === undefined || isAlive(pid)) continue
    const exit = exitOf(pid)
    const how = exit ? (exit.signal ? `was killed by ${exit.signal}` : `exited with status ${exit.code}`) : 'exited'
    return {index, how}
  }

  return undefined
}
