import {type Dirent, existsSync, lstatSync, readdirSync} from 'node:fs'
import {rm, symlink} from 'node:fs/promises'
import path from 'node:path'

import {UserError} from '../errors.js'
import {type Env, svcHome} from '../registry/spec.js'
import {memberProcesses} from './live.js'
import {manifestPath, readManifest} from './manifest.js'
import type {ClusterManifest} from './types.js'

/** Where `svc cluster` keeps its clusters: $SVC_HOME/clusters. */
export function clustersDir(env: Env = process.env): string {
  return path.join(svcHome(env), 'clusters')
}

/** `$SVC_HOME/clusters/<name>.json`: a link to the manifest inside the cluster's folder `<name>/`. */
export function namedManifestFile(name: string, env: Env = process.env): string {
  return path.join(clustersDir(env), `${name}.json`)
}

export function namedClusterDir(name: string, env: Env = process.env): string {
  return path.join(clustersDir(env), name)
}

/** The names of the clusters under $SVC_HOME/clusters: folders holding a manifest (also one whose start was cut short). */
export function clusterNames(env: Env = process.env): string[] {
  let entries: Dirent[]
  try {
    entries = readdirSync(clustersDir(env), {withFileTypes: true})
  } catch {
    return []
  }

  return entries
    .filter((e) => e.isDirectory() && existsSync(manifestPath(namedClusterDir(e.name, env))))
    .map((e) => e.name)
    .sort()
}

/** Publishes the manifest as `<name>.json` (a relative link, so the folder can move). */
export async function linkNamedManifest(manifest: ClusterManifest, env: Env = process.env): Promise<string> {
  const file = namedManifestFile(manifest.name, env)
  await rm(file, {force: true})
  await symlink(path.relative(path.dirname(file), manifestPath(manifest)), file)
  return file
}

export async function unlinkNamedManifest(name: string, env: Env = process.env): Promise<void> {
  const file = namedManifestFile(name, env)
  try {
    if (lstatSync(file).isSymbolicLink() || lstatSync(file).isFile()) await rm(file, {force: true})
  } catch {
    // already gone
  }
}

/** The cluster named `name`, or the only one there is when no name is given. */
export async function findCluster(name: string | undefined, env: Env = process.env): Promise<ClusterManifest> {
  const names = clusterNames(env)
  if (name === undefined) {
    if (names.length === 0)
      throw new UserError(`no cluster in ${clustersDir(env)}`, 'start one with: svc cluster up --backend etcd')
    if (names.length > 1)
      throw new UserError(`there are ${names.length} clusters (${names.join(', ')})`, 'choose one with --name')
    name = names[0] as string
  }

  if (!names.includes(name)) {
    const known = names.length > 0 ? `known: ${names.join(', ')}` : 'there is none'
    throw new UserError(
      `no cluster named "${name}" in ${clustersDir(env)} (${known})`,
      'start it with: svc cluster up --name ' + name,
    )
  }

  return readManifest(namedClusterDir(name, env))
}

/** Members with a live process: the one the manifest names, or one restarted by hand that listens on its ports. */
export function runningMembers(manifest: ClusterManifest): number {
  return memberProcesses(manifest).size
}

/** Every manifest under $SVC_HOME/clusters (unreadable ones are left out). */
export async function allClusters(env: Env = process.env): Promise<ClusterManifest[]> {
  const found = await Promise.allSettled(clusterNames(env).map((n) => readManifest(namedClusterDir(n, env))))
  return found.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))
}
