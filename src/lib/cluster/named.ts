import {rm} from 'node:fs/promises'

import {UserError} from '../errors.js'
import type {Env} from '../registry/spec.js'
import {
  findCluster,
  linkNamedManifest,
  namedClusterDir,
  namedManifestFile,
  runningMembers,
  unlinkNamedManifest,
} from './home.js'
import {startCluster, stopCluster} from './lifecycle.js'
import {memberProcesses} from './live.js'
import {readManifest} from './manifest.js'
import {clusterStatus} from './observe.js'
import type {ClusterKind, ClusterManifest, MemberStatus} from './types.js'
import {plural} from '../text.js'

/** A cluster as `svc cluster` shows it: the manifest, where it is published, and each member's state now. */
export interface ClusterView {
  name: string
  kind: ClusterKind
  backendUri: string
  dir: string
  manifest: string
  members: Array<MemberStatus & {ports: Record<string, number>}>
  leader?: string
}

export async function viewCluster(manifest: ClusterManifest, env: Env = process.env): Promise<ClusterView> {
  const statuses = await clusterStatus(manifest)
  // a member restarted by hand has a pid the manifest does not know: show the one listening on its ports
  const live = memberProcesses(manifest)
  for (const s of statuses) s.pid ??= live.get(s.index)?.[0]
  const view: ClusterView = {
    name: manifest.name,
    kind: manifest.kind,
    backendUri: manifest.backendUri,
    dir: manifest.dir,
    manifest: namedManifestFile(manifest.name, env),
    members: statuses.map((s) => ({...s, ports: manifest.members[s.index]?.ports ?? {}})),
  }
  const leader = statuses.find((s) => s.up && (s.role === 'leader' || s.role === 'standalone'))
  if (leader) view.leader = leader.name
  return view
}

export interface ClusterUpOptions {
  kind: ClusterKind
  nodes: number
  name: string
  basePort?: number
  timeoutMs?: number
  log?: (message: string) => void
  env?: Env
  /** Aborting stops what was started (Ctrl-C). */
  signal?: AbortSignal
}

/**
 * Starts a named cluster under $SVC_HOME/clusters/<name>/ and publishes its manifest as <name>.json. Refuses a
 * cluster of that name whose members still run; a stopped one must be removed with `svc cluster down` first.
 */
export async function clusterUp(opts: ClusterUpOptions): Promise<ClusterView> {
  const env = opts.env ?? process.env
  const dir = namedClusterDir(opts.name, env)
  const existing = await readManifest(dir).catch(() => undefined)
  if (existing) {
    const running = runningMembers(existing)
    throw new UserError(
      running > 0
        ? `cluster "${opts.name}" is already running (${existing.kind}, ${running} of ${plural(existing.members.length, 'member')} up, ${existing.backendUri})`
        : `cluster "${opts.name}" exists but is stopped (${existing.kind}, data in ${existing.dir})`,
      `stop and remove it with: svc cluster down --name ${opts.name}, or choose another --name`,
    )
  }

  let manifest: ClusterManifest
  try {
    manifest = await startCluster({
      kind: opts.kind,
      nodes: opts.nodes,
      name: opts.name,
      dir,
      basePort: opts.basePort,
      timeoutMs: opts.timeoutMs,
      log: opts.log,
      signal: opts.signal,
    })
  } catch (error) {
    // its members are stopped already; an interrupted start leaves nothing (a failed one keeps its logs)
    if (opts.signal?.aborted) await rm(dir, {recursive: true, force: true})
    throw error
  }

  await linkNamedManifest(manifest, env)
  return viewCluster(manifest, env)
}

export interface ClusterDownResult {
  name: string
  kind: ClusterKind
  stopped: number
  removed: string
}

/** Stops every member of the named cluster and removes its data, folder and manifest. */
export async function clusterDown(name: string | undefined, env: Env = process.env): Promise<ClusterDownResult> {
  const manifest = await findCluster(name, env)
  const stopped = runningMembers(manifest)
  await stopCluster(manifest, {removeData: true})
  await rm(manifest.dir, {recursive: true, force: true})
  await unlinkNamedManifest(manifest.name, env)
  return {name: manifest.name, kind: manifest.kind, stopped, removed: manifest.dir}
}

/** Table rows for members: name, address, role, pid, state. */
export function memberRows(view: ClusterView): string[][] {
  return view.members.map((m) => [
    m.name,
    m.address,
    m.up ? m.role : '-',
    m.pid === undefined ? '-' : String(m.pid),
    m.up ? 'up' : `down${m.detail ? ` (${m.detail})` : ''}`,
  ])
}

export const MEMBER_HEAD = ['NAME', 'ADDRESS', 'ROLE', 'PID', 'STATE']
