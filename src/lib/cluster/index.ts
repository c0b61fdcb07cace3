import {randomBytes} from 'node:crypto'
import {existsSync} from 'node:fs'
import {mkdir, readdir, rm, rmdir, writeFile} from 'node:fs/promises'
import path from 'node:path'

import {ExternalError, UserError} from '../errors.js'
import {findBinary} from './binaries.js'
import {consulDriver} from './consul.js'
import {type Driver, type MemberLayout, type MemberPlan, type MemberProbe, memberDir, memberMarker} from './driver.js'
import {etcdDriver} from './etcd.js'
import {MANIFEST_FILE, manifestPath, readManifest, writeManifest} from './manifest.js'
import {allocatePorts, releasePorts, reservePortRange} from './ports.js'
import {
  exitOf,
  isAlive,
  kill,
  ownsProcess,
  processState,
  signalGroup,
  sleep,
  spawnDetached,
  tailFile,
  terminate,
  waitForExit,
} from './process.js'
import {
  CLUSTER_HOST,
  type ClusterKind,
  type ClusterManifest,
  type MemberManifest,
  type MemberStatus,
  type StartClusterOptions,
  type StopSignal,
} from './types.js'
import {zookeeperDriver} from './zookeeper.js'

export * from './types.js'
export {findBinary, packageRoot} from './binaries.js'
export {manifestPath, readManifest, readManifestSync, writeManifest} from './manifest.js'
export {allocatePorts} from './ports.js'
export {spawnReaper} from './reaper.js'
export {zookeeperConfig} from './zookeeper.js'

const DRIVERS: Record<ClusterKind, Driver> = {zk: zookeeperDriver, etcd: etcdDriver, consul: consulDriver}

export function driverFor(kind: ClusterKind): Driver {
  return DRIVERS[kind]
}

const DEFAULT_TIMEOUT_MS = 60_000
const MEMBER_TIMEOUT_MS = 45_000
const PROBE_TIMEOUT_MS = 2000
const POLL_MS = 150
const STOP_GRACE_MS = 10_000
const PORT_ATTEMPTS = 3

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`

interface Observation {
  statuses: MemberStatus[]
  probes: MemberProbe[]
  /** The one leader that a majority of the members follows, if there is one. */
  leader?: number
}

function memberAt(manifest: ClusterManifest, index: number): MemberManifest {
  const member = manifest.members[index]
  if (!member) {
    throw new UserError(
      `cluster ${manifest.name} has no member ${index}`,
      `members are numbered 0 to ${manifest.members.length - 1}`,
    )
  }

  return member
}

async function observe(manifest: ClusterManifest): Promise<Observation> {
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

interface Verdict {
  ready: boolean
  reason: string
  /** The member to blame (whose log tail is quoted) when it never gets ready. */
  culprit?: number
  obs: Observation
}

async function clusterVerdict(manifest: ClusterManifest): Promise<Verdict> {
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

async function memberVerdict(manifest: ClusterManifest, index: number): Promise<Verdict> {
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
async function failure(manifest: ClusterManifest, index: number | undefined, summary: string): Promise<ExternalError> {
  const member = manifest.members[index ?? 0]
  let message = summary
  if (member) {
    const tail = await tailFile(member.logFile, 25)
    message += `\n--- last lines of ${member.name}'s log (${member.logFile}):\n${tail || '(empty)'}`
  }

  return new ExternalError(message, `see the member logs under ${manifest.dir}`)
}

/** A member we spawned exited: its index, and how. */
function exitedMember(manifest: ClusterManifest, indexes: readonly number[]): {index: number; how: string} | undefined {
  for (const index of indexes) {
    const pid = manifest.members[index]?.pid
    if (pid === undefined || isAlive(pid)) continue
    const exit = exitOf(pid)
    const how = exit ? (exit.signal ? `was killed by ${exit.signal}` : `exited with status ${exit.code}`) : 'exited'
    return {index, how}
  }

  return undefined
}

class PortClash extends Error {}

const BIND_FAILURE = /address already in use|BindException|bind: address|EADDRINUSE|Failed to bind/i

async function prepareDir(dir: string, names: readonly string[]): Promise<void> {
  await mkdir(dir, {recursive: true})
  if (existsSync(path.join(dir, MANIFEST_FILE))) {
    throw new UserError(
      `a cluster already exists in ${dir}`,
      'stop it and remove its data first, or choose another directory',
    )
  }

  // Leftovers of a start that failed (a manifest is removed then): stale data would make etcd and Consul rejoin
  // an old cluster.
  for (const name of names) await rm(path.join(dir, name), {recursive: true, force: true})
}

/**
 * Starts a cluster of `nodes` members (default 3) on 127.0.0.1 and waits, within `timeoutMs`, until a leader is
 * elected and every member answers and follows it. The members run detached from this process (own process group,
 * output to `<dir>/<member>/server.log`), so another process can stop them through `<dir>/manifest.json`. On
 * failure everything started is killed and the error quotes the failing member's log.
 */
export async function startCluster(opts: StartClusterOptions): Promise<ClusterManifest> {
  const driver = driverFor(opts.kind)
  const nodes = opts.nodes ?? 3
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 9)
    throw new UserError(`cannot run ${nodes} members`, 'use 1 to 9 members (3 or 5 make sense)')
  if (!/^[\w.-]+$/.test(opts.name))
    throw new UserError(`invalid cluster name "${opts.name}"`, 'use letters, digits, dot, dash and underscore')
  const command = findBinary(opts.kind)
  const dir = path.resolve(opts.dir)
  const names = Array.from({length: nodes}, (_, i) => driver.memberName(i))
  await prepareDir(dir, names)

  const portCount = nodes * driver.portNames.length
  for (let attempt = 1; ; attempt++) {
    const ports =
      opts.basePort === undefined ? await allocatePorts(portCount) : await reservePortRange(opts.basePort, portCount)
    try {
      return await launch(driver, command, {...opts, dir, nodes}, names, ports)
    } catch (error) {
      releasePorts(ports)
      if (!(error instanceof PortClash) || opts.basePort !== undefined || attempt >= PORT_ATTEMPTS) {
        throw error instanceof PortClash ? (error.cause ?? error) : error
      }

      opts.log?.(`${opts.kind}: a port was taken meanwhile (${error.message}); retrying with other ports`)
      await prepareDir(dir, names)
    }
  }
}

async function launch(
  driver: Driver,
  command: string,
  opts: StartClusterOptions & {dir: string; nodes: number},
  names: readonly string[],
  ports: readonly number[],
): Promise<ClusterManifest> {
  const {dir, nodes} = opts
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const layouts = names.map((name, index): MemberLayout => {
    const own: Record<string, number> = {}
    for (const [j, role] of driver.portNames.entries()) own[role] = ports[j * nodes + index] as number
    const folder = path.join(dir, name)
    return {
      name,
      index,
      ports: own,
      memberDir: folder,
      dataDir: path.join(folder, 'data'),
      logFile: path.join(folder, 'server.log'),
    }
  })
  const ctx = {clusterName: opts.name, token: `${opts.name}-${randomBytes(6).toString('hex')}`, members: layouts}
  const plans = layouts.map((_, index) => driver.plan(ctx, command, index))
  const members = layouts.map((layout, index): MemberManifest => {
    const plan = plans[index] as MemberPlan
    return {
      name: layout.name,
      index,
      clientPort: layout.ports[driver.portNames[0] as string] as number,
      ports: layout.ports,
      dataDir: layout.dataDir,
      logFile: layout.logFile,
      command,
      args: plan.args,
    }
  })
  const manifest: ClusterManifest = {
    name: opts.name,
    kind: opts.kind,
    dir,
    createdAt: new Date().toISOString(),
    members,
    backendUri: driver.backendUri(members),
  }

  for (const [index, layout] of layouts.entries()) {
    await mkdir(layout.dataDir, {recursive: true})
    for (const file of (plans[index] as MemberPlan).files) await writeFile(file.path, file.content)
  }

  await writeManifest(manifest)
  const started = Date.now()
  try {
    for (const member of members) {
      throwIfInterrupted(opts)
      member.pid = await spawnDetached(member.command, member.args, {cwd: memberDir(member), logFile: member.logFile})
      opts.log?.(`${opts.kind}: started ${member.name} (pid ${member.pid}, ${CLUSTER_HOST}:${member.clientPort})`)
    }

    await writeManifest(manifest)
    const deadline = started + timeoutMs
    let answeringMs: number | undefined
    let leaderMs: number | undefined
    for (;;) {
      const exited = exitedMember(
        manifest,
        members.map((m) => m.index),
      )
      if (exited) {
        const member = members[exited.index] as MemberManifest
        const error = await failure(
          manifest,
          exited.index,
          `${driver.label} member ${member.name} ${exited.how} while the cluster started`,
        )
        if (BIND_FAILURE.test(error.message)) throw new PortClash(`${member.name}: port in use`, {cause: error})
        throw error
      }

      throwIfInterrupted(opts)
      const verdict = await clusterVerdict(manifest)
      const now = Date.now() - started
      if (answeringMs === undefined && verdict.obs.statuses.every((s) => s.up)) answeringMs = now
      if (
        leaderMs === undefined &&
        verdict.obs.statuses.some((s) => s.up && (s.role === 'leader' || s.role === 'standalone'))
      )
        leaderMs = now
      if (verdict.ready) {
        manifest.timings = {answeringMs: answeringMs ?? now, leaderMs: leaderMs ?? now, readyMs: now}
        await writeManifest(manifest)
        opts.log?.(
          `${opts.kind}: ${plural(nodes, 'member')} ready in ${seconds(now)} (answering ${seconds(answeringMs ?? now)}, leader ${seconds(leaderMs ?? now)})`,
        )
        return manifest
      }

      if (Date.now() >= deadline) {
        throw await failure(
          manifest,
          verdict.culprit,
          `${driver.label} cluster ${opts.name} was not ready within ${seconds(timeoutMs)}: ${verdict.reason}`,
        )
      }

      await sleep(POLL_MS)
    }
  } catch (error) {
    await Promise.allSettled(members.map(async (m) => m.pid !== undefined && kill(m.pid)))
    await rm(manifestPath(manifest), {force: true})
    throw error
  }
}

function throwIfInterrupted(opts: StartClusterOptions): void {
  if (opts.signal?.aborted) {
    throw new UserError(
      `starting cluster ${opts.name} was interrupted; the members started so far were stopped`,
      'run the same command again to start it',
    )
  }
}

/**
 * Stops one member. SIGTERM (the default) falls back to SIGKILL after a bound; both resolve once the process is
 * gone. SIGSTOP freezes it (it keeps its ports and does not answer) and resolves once it is stopped; startMember
 * resumes it. A member that is not running is left alone.
 */
export async function stopMember(
  manifest: ClusterManifest,
  index: number,
  signal: StopSignal = 'SIGTERM',
): Promise<void> {
  const member = memberAt(manifest, index)
  const pid = member.pid
  if (!ownsProcess(pid, memberMarker(member))) return
  switch (signal) {
    case 'SIGSTOP': {
      signalGroup(pid, 'SIGSTOP')
      const deadline = Date.now() + 5000
      while (processState(pid) === 'running' && Date.now() < deadline) await sleep(20)
      return
    }

    case 'SIGKILL': {
      await kill(pid)
      return
    }

    case 'SIGTERM': {
      await terminate(pid, STOP_GRACE_MS)
    }
  }
}

/**
 * Brings a member back: resumes it if it was SIGSTOPped, otherwise starts it again with the same arguments and
 * data, records the new pid in the manifest file, and waits (bounded) until it answers and follows the leader.
 * Resolves with the manifest as now on disk.
 */
export async function startMember(
  manifest: ClusterManifest,
  index: number,
  opts: {timeoutMs?: number; log?: (message: string) => void} = {},
): Promise<ClusterManifest> {
  memberAt(manifest, index)
  const timeoutMs = opts.timeoutMs ?? MEMBER_TIMEOUT_MS
  let current = await readManifest(manifestPath(manifest)).catch(() => manifest)
  let member = memberAt(current, index)
  const started = Date.now()
  if (ownsProcess(member.pid, memberMarker(member))) {
    if (processState(member.pid) === 'stopped') {
      signalGroup(member.pid, 'SIGCONT')
      opts.log?.(`${current.kind}: resumed ${member.name} (pid ${member.pid})`)
    }
  } else {
    const pid = await spawnDetached(member.command, member.args, {cwd: memberDir(member), logFile: member.logFile})
    opts.log?.(`${current.kind}: restarted ${member.name} (pid ${pid})`)
    // Re-read right before writing: tests in other processes may restart other members of the same cluster.
    current = await readManifest(manifestPath(manifest)).catch(() => current)
    member = memberAt(current, index)
    member.pid = pid
    await writeManifest(current)
  }

  const deadline = started + timeoutMs
  for (;;) {
    const pid = member.pid
    if (pid !== undefined && !isAlive(pid)) {
      const exit = exitedMember(current, [index])
      throw await failure(
        current,
        index,
        `${driverFor(current.kind).label} member ${member.name} ${exit?.how ?? 'exited'} while restarting`,
      )
    }

    const verdict = await memberVerdict(current, index)
    if (verdict.ready) return current
    if (Date.now() >= deadline) {
      throw await failure(
        current,
        index,
        `${member.name} did not rejoin within ${seconds(timeoutMs)}: ${verdict.reason}`,
      )
    }

    await sleep(POLL_MS)
  }
}

/** Starts every member that is not running (e.g. after stopCluster kept the data) and waits until all are ready. */
export async function resumeCluster(
  manifest: ClusterManifest,
  opts: {timeoutMs?: number; log?: (message: string) => void} = {},
): Promise<ClusterManifest> {
  let current = await readManifest(manifestPath(manifest)).catch(() => manifest)
  for (const member of current.members) {
    if (ownsProcess(member.pid, memberMarker(member))) {
      if (processState(member.pid) === 'stopped') signalGroup(member.pid, 'SIGCONT')
      continue
    }

    member.pid = await spawnDetached(member.command, member.args, {cwd: memberDir(member), logFile: member.logFile})
    opts.log?.(`${current.kind}: started ${member.name} (pid ${member.pid})`)
  }

  await writeManifest(current)
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const verdict = await clusterVerdict(current)
    if (verdict.ready) return current
    if (Date.now() >= deadline) {
      throw await failure(
        current,
        verdict.culprit,
        `${current.kind} cluster ${current.name} was not ready within ${seconds(timeoutMs)}: ${verdict.reason}`,
      )
    }

    await sleep(POLL_MS)
    current = await readManifest(manifestPath(current)).catch(() => current)
  }
}

/**
 * Stops every member (SIGTERM, SIGKILL after a bound) and waits until all are gone. The manifest stays (without
 * pids) unless `removeData`, which deletes the members' folders and the manifest, and the dir when that empties it.
 */
export async function stopCluster(manifest: ClusterManifest, opts: {removeData?: boolean} = {}): Promise<void> {
  const current = await readManifest(manifestPath(manifest)).catch(() => manifest)
  const running = current.members.filter((m) => ownsProcess(m.pid, memberMarker(m)))
  // Followers first, then the leader: a stopping etcd leader hands over leadership and waits up to 6 s for a
  // follower that is stopping too; with no follower left it quits at once. It also spares the others an election.
  const leader =
    running.length > 1
      ? await observe(current).then(
          (o) => o.leader,
          () => undefined,
        )
      : undefined
  const stop = (members: readonly MemberManifest[]): Promise<Array<PromiseSettledResult<void>>> =>
    Promise.allSettled(
      members.map(async (m) => {
        if (m.pid !== undefined) await terminate(m.pid, STOP_GRACE_MS)
      }),
    )
  const results = [
    ...(await stop(running.filter((m) => m.index !== leader))),
    ...(await stop(running.filter((m) => m.index === leader))),
  ]
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (failed)
    throw new ExternalError(`could not stop ${current.kind} cluster ${current.name}: ${String(failed.reason)}`)
  releasePorts(current.members.flatMap((m) => Object.values(m.ports)))

  if (opts.removeData) {
    for (const member of current.members) await rm(memberDir(member), {recursive: true, force: true})
    await rm(manifestPath(current), {force: true})
    const left = await readdir(current.dir).catch(() => undefined)
    if (left?.length === 0) await rmdir(current.dir).catch(() => {})
    return
  }

  for (const member of current.members) delete member.pid
  await writeManifest(current)
}

/** Checks that each member's pid (if any) is the member's own process; for callers that signal pids themselves. */
export function memberPid(manifest: ClusterManifest, index: number): number | undefined {
  const member = memberAt(manifest, index)
  return ownsProcess(member.pid, memberMarker(member)) ? member.pid : undefined
}

/** Waits until the member's process is gone; false on timeout. */
export async function waitForMemberExit(manifest: ClusterManifest, index: number, timeoutMs: number): Promise<boolean> {
  const pid = memberPid(manifest, index)
  return pid === undefined ? true : waitForExit(pid, timeoutMs)
}

export {
  allClusters,
  clusterNames,
  clustersDir,
  findCluster,
  linkNamedManifest,
  namedClusterDir,
  namedManifestFile,
  runningMembers,
  unlinkNamedManifest,
} from './home.js'
import {plural} from '../text.js'
export {memberMarker} from './driver.js'
export {ownsProcess, processState, signalGroup, spawnDetached, sleep} from './process.js'
export {clusterDown, clusterUp, type ClusterView, MEMBER_HEAD, memberRows, viewCluster} from './named.js'
