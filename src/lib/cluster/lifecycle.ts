import {randomBytes} from 'node:crypto'
import {existsSync} from 'node:fs'
import {mkdir, readdir, rm, rmdir, writeFile} from 'node:fs/promises'
import path from 'node:path'

import {ExternalError, UserError} from '../errors.js'
import {plural} from '../text.js'
import {findBinary} from './binaries.js'
import {type Driver, type MemberLayout, type MemberPlan, memberDir, memberMarker} from './driver.js'
import {memberProcesses} from './live.js'
import {MANIFEST_FILE, manifestPath, readManifest, writeManifest} from './manifest.js'
import {
  clusterVerdict,
  driverFor,
  exitedMember,
  failure,
  memberAt,
  memberVerdict,
  observe,
  POLL_MS,
  seconds,
} from './observe.js'
import {allocatePorts, releasePorts, reservePortRange} from './ports.js'
import {isAlive, kill, ownsProcess, processState, signalGroup, sleep, spawnDetached, terminate} from './process.js'
import {
  CLUSTER_HOST,
  type ClusterManifest,
  type MemberManifest,
  type StartClusterOptions,
  type StopSignal,
} from './types.js'

const DEFAULT_TIMEOUT_MS = 60_000
const MEMBER_TIMEOUT_MS = 45_000
const STOP_GRACE_MS = 10_000
const PORT_ATTEMPTS = 3

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

/** The members' folders, ports and commands, and the manifest that records them. */
function planCluster(
  driver: Driver,
  command: string,
  opts: StartClusterOptions & {dir: string; nodes: number},
  names: readonly string[],
  ports: readonly number[],
): {layouts: MemberLayout[]; plans: MemberPlan[]; members: MemberManifest[]; manifest: ClusterManifest} {
  const {dir, nodes} = opts
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

  return {layouts, plans, members, manifest}
}

async function launch(
  driver: Driver,
  command: string,
  opts: StartClusterOptions & {dir: string; nodes: number},
  names: readonly string[],
  ports: readonly number[],
): Promise<ClusterManifest> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const {layouts, plans, members, manifest} = planCluster(driver, command, opts, names, ports)
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
      await throwIfExited(driver, manifest)

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
          `${opts.kind}: ${plural(opts.nodes, 'member')} ready in ${seconds(now)} (answering ${seconds(answeringMs ?? now)}, leader ${seconds(leaderMs ?? now)})`,
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

/** Fails the start when a member exited meanwhile; a member that could not bind its port is a PortClash. */
async function throwIfExited(driver: Driver, manifest: ClusterManifest): Promise<void> {
  const {members} = manifest
  const exited = exitedMember(
    manifest,
    members.map((m) => m.index),
  )
  if (!exited) return
  const member = members[exited.index] as MemberManifest
  const error = await failure(
    manifest,
    exited.index,
    `${driver.label} member ${member.name} ${exited.how} while the cluster started`,
  )
  if (BIND_FAILURE.test(error.message)) throw new PortClash(`${member.name}: port in use`, {cause: error})
  throw error
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

/**
 * Stops every member (SIGTERM, SIGKILL after a bound) and waits until all are gone: the processes the manifest
 * names and those that listen on the members' ports from the members' folders (restarted by hand). The manifest
 * stays (without pids) unless `removeData`, which deletes the members' folders and the manifest, and the dir when
 * that empties it; data is deleted only once no process of any member is left.
 */
export async function stopCluster(manifest: ClusterManifest, opts: {removeData?: boolean} = {}): Promise<void> {
  const current = await readManifest(manifestPath(manifest)).catch(() => manifest)
  const running = memberProcesses(current)
  // Followers first, then the leader: a stopping etcd leader hands over leadership and waits up to 6 s for a
  // follower that is stopping too; with no follower left it quits at once. It also spares the others an election.
  const leader =
    running.size > 1
      ? await observe(current).then(
          (o) => o.leader,
          () => undefined,
        )
      : undefined
  const stop = (indexes: readonly number[]): Promise<Array<PromiseSettledResult<void>>> =>
    Promise.allSettled(indexes.flatMap((i) => (running.get(i) ?? []).map((pid) => terminate(pid, STOP_GRACE_MS))))
  const indexes = [...running.keys()]
  const results = [
    ...(await stop(indexes.filter((i) => i !== leader))),
    ...(await stop(indexes.filter((i) => i === leader))),
  ]
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (failed)
    throw new ExternalError(`could not stop ${current.kind} cluster ${current.name}: ${String(failed.reason)}`)
  const left = memberProcesses(current)
  if (left.size > 0) {
    const names = [...left].map(([i, pids]) => `${current.members[i]?.name} (pid ${pids.join(', ')})`).join(', ')
    throw new ExternalError(
      `${current.kind} cluster ${current.name} still runs after it was stopped: ${names}; its data is kept`,
      `stop those processes, then run the same command again`,
    )
  }

  releasePorts(current.members.flatMap((m) => Object.values(m.ports)))
  if (opts.removeData) {
    for (const member of current.members) await rm(memberDir(member), {recursive: true, force: true})
    await rm(manifestPath(current), {force: true})
    const rest = await readdir(current.dir).catch(() => undefined)
    if (rest?.length === 0) await rmdir(current.dir).catch(() => {})
    return
  }

  for (const member of current.members) delete member.pid
  await writeManifest(current)
}
