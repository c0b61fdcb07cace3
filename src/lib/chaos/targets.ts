import {mkdirSync} from 'node:fs'
import {networkInterfaces} from 'node:os'
import path from 'node:path'

import type Dockerode from 'dockerode'

import {memberMarker} from '../cluster/driver.js'
import {allClusters} from '../cluster/home.js'
import {startMember, stopMember} from '../cluster/index.js'
import {isAlive, ownsProcess, sleep, spawnDetached} from '../cluster/process.js'
import type {ClusterManifest} from '../cluster/types.js'
import {ExternalError, UserError} from '../errors.js'
import {type Env, svcHome} from '../registry/spec.js'
import {listeningPids, type ProcessInfo, processInfo} from '../procnet.js'

export type DrillSignal = 'SIGKILL' | 'SIGTERM' | 'SIGSTOP'

/** What runs a member or an instance on this machine, and what stopping it means. */
export type Target =
  | {kind: 'member'; cluster: string; manifest: ClusterManifest; index: number; member: string; pid: number}
  | {kind: 'container'; id: string; name: string; image: string; docker: Dockerode}
  | {kind: 'process'; pid: number; info: ProcessInfo}

/** The JSON-safe part of a target, for reports. */
export interface TargetSummary {
  kind: Target['kind']
  description: string
  pid?: number
  containerId?: string
  containerName?: string
  cluster?: string
  member?: string
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost|::ffff:127\.\d+\.\d+\.\d+)$/i

/** The address is this machine's: loopback, or one of its interfaces' addresses. */
export function isLocalAddress(host: string): boolean {
  const bare = host.replaceAll(/^\[|\]$/g, '')
  if (LOOPBACK.test(bare)) return true
  return Object.values(networkInterfaces()).some((list) => (list ?? []).some((a) => a.address === bare))
}

export function describeTarget(target: Target): string {
  switch (target.kind) {
    case 'member': {
      return `member ${target.member} of svc cluster "${target.cluster}" (pid ${target.pid})`
    }

    case 'container': {
      return `Docker container ${target.name} (${target.id.slice(0, 12)}, image ${target.image})`
    }

    case 'process': {
      const command = target.info.argv.join(' ')
      return `process ${target.pid} (${target.info.comm}: ${command.length > 100 ? command.slice(0, 97) + '...' : command})`
    }
  }
}

export function summarizeTarget(target: Target): TargetSummary {
  const summary: TargetSummary = {kind: target.kind, description: describeTarget(target)}
  if (target.kind === 'member')
    Object.assign(summary, {pid: target.pid, cluster: target.cluster, member: target.member})
  if (target.kind === 'container') Object.assign(summary, {containerId: target.id, containerName: target.name})
  if (target.kind === 'process') summary.pid = target.pid
  return summary
}

/** A member of a `svc cluster` whose client port is `port` and whose process runs. */
async function manifestMember(port: number, env: Env): Promise<Target | undefined> {
  for (const manifest of await allClusters(env)) {
    for (const member of manifest.members) {
      if (member.clientPort !== port || !ownsProcess(member.pid, memberMarker(member))) continue
      return {
        kind: 'member',
        cluster: manifest.name,
        manifest,
        index: member.index,
        member: member.name,
        pid: member.pid,
      }
    }
  }

  return undefined
}

const PUBLISHED_ON = new Set(['', '0.0.0.0', '127.0.0.1', '::', '::1'])

/** The running container that publishes host port `port`; undefined when Docker does not run here. */
export async function containerPublishing(
  port: number,
  docker?: Dockerode,
): Promise<{target?: Target; docker?: Dockerode}> {
  let client = docker
  if (!client) {
    try {
      const {connectDocker} = await import('../docker/docker.js')
      client = await connectDocker(undefined, 2000)
    } catch {
      return {}
    }
  }

  const containers = await client.listContainers()
  for (const c of containers) {
    const hit = (c.Ports ?? []).some((p) => p.PublicPort === port && p.Type === 'tcp' && PUBLISHED_ON.has(p.IP ?? ''))
    if (hit) {
      const name = (c.Names?.[0] ?? c.Id).replace(/^\//, '')
      return {target: {kind: 'container', id: c.Id, name, image: c.Image, docker: client}, docker: client}
    }
  }

  return {docker: client}
}

/** The one local process listening on host:port (docker-proxy is never a target: the container behind it is). */
function listeningProcess(host: string, port: number): Target | undefined {
  const pids = listeningPids(host, port)
  const infos = pids.flatMap((pid) => {
    const info = processInfo(pid)
    return info ? [info] : []
  })
  const proxy = infos.find((i) => i.comm === 'docker-proxy')
  if (proxy) {
    throw new UserError(
      `${host}:${port} is published by Docker (docker-proxy pid ${proxy.pid}) but no running container matched`,
      'check `docker ps`; svc never stops docker-proxy itself',
    )
  }

  // A server that forked workers shares its socket with them: the target is the one whose parent is not in the set.
  const own = new Set(infos.map((i) => i.pid))
  const root = infos.find((i) => !own.has(i.ppid ?? -1)) ?? infos[0]
  return root ? {kind: 'process', pid: root.pid, info: root} : undefined
}

export interface LocateOptions {
  env?: Env
  docker?: Dockerode
}

/**
 * What serves host:port on this machine: a `svc cluster` member, else a Docker container that publishes the port,
 * else the process listening on it. Refuses addresses of other machines.
 */
export async function locateTarget(host: string, port: number, opts: LocateOptions = {}): Promise<Target> {
  if (!isLocalAddress(host)) {
    throw new UserError(
      `${host}:${port} is not an address of this machine`,
      'svc chaos stops only local processes and containers: run it on the machine that runs the server',
    )
  }

  const member = await manifestMember(port, opts.env ?? process.env)
  if (member) return member
  const {target} = await containerPublishing(port, opts.docker).catch(() => ({target: undefined}))
  if (target) return target
  const process_ = listeningProcess(host, port)
  if (process_) return process_
  throw new UserError(
    `nothing on this machine listens on ${host}:${port} (no svc cluster member, container or process)`,
    'check the address, and run svc as a user that can see the process (root for other users)',
  )
}

/** Sends the drill's signal; KILL and TERM resolve once it is gone (TERM: SIGKILL after 10 s), STOP once frozen. */
export async function stopTarget(target: Target, signal: DrillSignal): Promise<void> {
  switch (target.kind) {
    case 'member': {
      await stopMember(target.manifest, target.index, signal)
      return
    }

    case 'container': {
      const container = target.docker.getContainer(target.id)
      if (signal === 'SIGSTOP') await container.pause()
      else if (signal === 'SIGTERM') await container.stop({t: 10})
      else await container.kill({signal: 'SIGKILL'})
      return
    }

    case 'process': {
      process.kill(target.pid, signal)
      if (signal === 'SIGSTOP') return
      if (await gone(target.pid, signal === 'SIGTERM' ? 10_000 : 5000)) return
      process.kill(target.pid, 'SIGKILL')
      if (!(await gone(target.pid, 5000))) throw new ExternalError(`process ${target.pid} survived SIGKILL`)
    }
  }
}

async function gone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (isAlive(pid)) {
    if (Date.now() >= deadline) return false
    await sleep(20)
  }

  return true
}

/** What restarting did, and the process or container that runs now. */
export interface RestartResult {
  how: string
  pid?: number
}

/**
 * Brings a stopped target back: a cluster member with its own command line and data (svc cluster), a container
 * with `docker start` (or unpause), a frozen process with SIGCONT, and a killed process by running its command
 * line again from /proc (same arguments, working directory and environment; output to $SVC_HOME/chaos/).
 */
export async function restartTarget(
  target: Target,
  signal: DrillSignal,
  env: Env = process.env,
): Promise<RestartResult> {
  switch (target.kind) {
    case 'member': {
      const manifest = await startMember(target.manifest, target.index, {timeoutMs: 60_000})
      const pid = manifest.members[target.index]?.pid
      const how = signal === 'SIGSTOP' ? 'resumed with SIGCONT' : 'started again with its command line and data'
      return pid === undefined ? {how} : {how, pid}
    }

    case 'container': {
      const container = target.docker.getContainer(target.id)
      if (signal === 'SIGSTOP') {
        await container.unpause()
        return {how: 'docker unpause'}
      }

      await container.start()
      return {how: 'docker start'}
    }

    case 'process': {
      if (signal === 'SIGSTOP') {
        process.kill(target.pid, 'SIGCONT')
        return {how: 'resumed with SIGCONT', pid: target.pid}
      }

      const [command, ...args] = target.info.argv
      if (!command || !target.info.cwd || !target.info.env) {
        throw new ExternalError(
          `cannot restart process ${target.pid}: its command line, directory or environment was not readable`,
          'start it again yourself',
        )
      }

      const logDir = path.join(svcHome(env), 'chaos')
      mkdirSync(logDir, {recursive: true})
      const logFile = path.join(logDir, `${target.info.comm}-${target.pid}.log`)
      const pid = await spawnDetached(command, args, {cwd: target.info.cwd, logFile, env: target.info.env})
      return {how: `ran its command line again (output in ${logFile})`, pid}
    }
  }
}
