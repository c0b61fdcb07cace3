import path from 'node:path'
import {inject} from 'vitest'

import {readManifestSync} from '../../src/lib/cluster/manifest.js'
import type {ClusterKind, ClusterManifest} from '../../src/lib/cluster/types.js'
import {withLock} from './lock.js'

/** What test/global-setup.ts provides for one cluster. */
export interface ProvidedCluster {
  /** Backend URI: zk://127.0.0.1:p1,.../services, etcd://.../services, consul://... */
  uri: string
  manifestPath: string
}

/** The clusters this run started: all three, or none when SVC_TEST_CLUSTERS=none (or only some, if it names them). */
export type ProvidedClusters = Partial<Record<ClusterKind, ProvidedCluster>>

declare module 'vitest' {
  export interface ProvidedContext {
    clusters: ProvidedClusters
  }
}

const ENV_NAMES: Record<ClusterKind, string> = {zk: 'SVC_TEST_ZK', etcd: 'SVC_TEST_ETCD', consul: 'SVC_TEST_CONSUL'}
const MANIFEST_ENV_NAMES: Record<ClusterKind, string> = {
  zk: 'SVC_TEST_ZK_MANIFEST',
  etcd: 'SVC_TEST_ETCD_MANIFEST',
  consul: 'SVC_TEST_CONSUL_MANIFEST',
}

/** The env vars global setup sets for processes that tests spawn. */
export const clusterEnvNames = {uri: ENV_NAMES, manifest: MANIFEST_ENV_NAMES}

function provided(kind: ClusterKind): ProvidedCluster | undefined {
  let clusters: ProvidedClusters | undefined
  try {
    clusters = inject('clusters')
  } catch {
    // outside a vitest worker: fall back to the environment
  }

  const found = clusters?.[kind]
  if (found) return found
  const uri = process.env[ENV_NAMES[kind]]
  const manifestPath = process.env[MANIFEST_ENV_NAMES[kind]]
  return uri && manifestPath ? {uri, manifestPath} : undefined
}

export function hasTestCluster(kind: ClusterKind): boolean {
  return provided(kind) !== undefined
}

/** The cluster global setup started for `kind`, with its manifest read afresh (pids change when members restart). */
export function testCluster(kind: ClusterKind): {uri: string; manifest: ClusterManifest; manifestPath: string} {
  const cluster = provided(kind)
  if (!cluster) {
    throw new Error(
      `no ${kind} test cluster: run the integration or e2e project (vitest run --project integration) without SVC_TEST_CLUSTERS=none`,
    )
  }

  return {uri: cluster.uri, manifest: readManifestSync(cluster.manifestPath), manifestPath: cluster.manifestPath}
}

/**
 * Runs `fn` while holding the cluster's disruption lock, shared by every test process: tests that stop members
 * take turns, so two files never stop two members of one 3-member cluster at once (which would lose its quorum).
 * `fn` must leave every member running again.
 */
export async function withClusterLock<T>(kind: ClusterKind, fn: () => Promise<T>, timeoutMs = 120_000): Promise<T> {
  const {manifest} = testCluster(kind)
  return withLock(path.join(manifest.dir, 'disrupt.lock'), `the ${kind} cluster's disruption lock`, fn, timeoutMs)
}
