import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import type {TestProject} from 'vitest/node'

import {
  CLUSTER_KINDS,
  type ClusterKind,
  type ClusterManifest,
  manifestPath,
  spawnReaper,
  startCluster,
  stopCluster,
} from '../src/lib/cluster/index.js'
import type {ProvidedClusters} from './helpers/clusters.js'
import {findLeaks, OUTPUT_DIR_ENV} from './helpers/secrets.js'

/**
 * Starts one 3-member ZooKeeper, etcd and Consul cluster on 127.0.0.1 per test run, in parallel, under a fresh
 * os.tmpdir()/svc-test-XXXX, and provides `clusters` (see test/helpers/clusters.ts). Also sets SVC_TEST_ZK,
 * SVC_TEST_ETCD, SVC_TEST_CONSUL (URIs) and SVC_TEST_*_MANIFEST for processes the tests spawn.
 *
 * SVC_TEST_CLUSTERS: unset or `all` starts all three; `none` starts nothing; `zk,etcd` starts those.
 * Runs that include neither the integration nor the e2e project start nothing. SVC_TEST_KEEP=1 keeps the
 * directory (logs, data) after the servers stop.
 *
 * Vitest calls this once for the root project and once for each project in the run; they share one start.
 * If this process dies without tearing down, a detached reaper kills the servers and removes the directory.
 */

const ENV: Record<ClusterKind, string> = {zk: 'SVC_TEST_ZK', etcd: 'SVC_TEST_ETCD', consul: 'SVC_TEST_CONSUL'}
const NEEDS_CLUSTERS = new Set(['e2e', 'integration'])
const START_TIMEOUT_MS = 90_000

interface Started {
  root: string
  manifests: ClusterManifest[]
  provided: ProvidedClusters
}

interface Shared {
  refs: number
  ready: Promise<Started>
}

const SHARED = Symbol.for('svc.test.clusters')
type Holder = {[SHARED]?: Shared}
const holder = globalThis as Holder

const log = (message: string): void => {
  process.stderr.write(`[svc-test] ${message}\n`)
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)}s`

function requestedKinds(): ClusterKind[] {
  const value = (process.env.SVC_TEST_CLUSTERS ?? '').trim().toLowerCase()
  if (value === '' || value === 'all') return [...CLUSTER_KINDS]
  if (value === 'none') return []
  const kinds = value.split(',').map((k) => k.trim())
  const unknown = kinds.filter((k) => !CLUSTER_KINDS.includes(k as ClusterKind))
  if (unknown.length > 0)
    throw new Error(
      `SVC_TEST_CLUSTERS names unknown clusters: ${unknown.join(', ')} (use all, none, or zk,etcd,consul)`,
    )
  return kinds as ClusterKind[]
}

function runNeedsClusters(project: TestProject): boolean {
  return project.vitest.projects.some((p) => NEEDS_CLUSTERS.has(p.name))
}

async function startAll(kinds: readonly ClusterKind[]): Promise<Started> {
  const root = mkdtempSync(path.join(tmpdir(), 'svc-test-'))
  spawnReaper(root)
  const began = Date.now()
  const results = await Promise.allSettled(
    kinds.map((kind) =>
      startCluster({kind, nodes: 3, name: `svc-test-${kind}`, dir: path.join(root, kind), timeoutMs: START_TIMEOUT_MS}),
    ),
  )
  const manifests = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))
  const failures = results.flatMap((r, i) => (r.status === 'rejected' ? [`${kinds[i]}: ${errorText(r.reason)}`] : []))
  if (failures.length > 0) {
    await Promise.allSettled(manifests.map((m) => stopCluster(m)))
    if (!process.env.SVC_TEST_KEEP) rmSync(root, {recursive: true, force: true})
    throw new Error(`test clusters did not start:\n${failures.join('\n')}`)
  }

  const provided: ProvidedClusters = {}
  for (const manifest of manifests) {
    const file = manifestPath(manifest)
    provided[manifest.kind] = {uri: manifest.backendUri, manifestPath: file}
    process.env[ENV[manifest.kind]] = manifest.backendUri
    process.env[`${ENV[manifest.kind]}_MANIFEST`] = file
  }

  const parts = manifests.map((m) =>
    m.timings ? `${m.kind} ${seconds(m.timings.readyMs)} (leader ${seconds(m.timings.leaderMs)})` : m.kind,
  )
  log(`clusters up in ${seconds(Date.now() - began)}: ${parts.join(', ')}; dir ${root}`)
  return {root, manifests, provided}
}

async function stopAll(started: Started): Promise<void> {
  const began = Date.now()
  const results = await Promise.allSettled(started.manifests.map((m) => stopCluster(m)))
  for (const kind of CLUSTER_KINDS) {
    delete process.env[ENV[kind]]
    delete process.env[`${ENV[kind]}_MANIFEST`]
  }

  if (process.env.SVC_TEST_KEEP) log(`kept ${started.root}`)
  else rmSync(started.root, {recursive: true, force: true})
  const failed = results.flatMap((r) => (r.status === 'rejected' ? [errorText(r.reason)] : []))
  if (failed.length > 0) throw new Error(`could not stop the test clusters: ${failed.join('; ')}`)
  log(`clusters stopped in ${seconds(Date.now() - began)}`)
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

const OUTPUT = Symbol.for('svc.test.output')
type OutputHolder = {[OUTPUT]?: {dir: string; refs: number}}
const outputHolder = globalThis as OutputHolder

/**
 * One directory per run for copies of everything the spawned svc processes print (SVC_TEST_OUTPUT_DIR, inherited
 * by the test workers); the last teardown fails the run when a secret a test recorded appears in one of them.
 */
function watchOutputs(): () => void {
  let shared = outputHolder[OUTPUT]
  if (!shared) {
    shared = {dir: mkdtempSync(path.join(tmpdir(), 'svc-test-output-')), refs: 0}
    outputHolder[OUTPUT] = shared
    process.env[OUTPUT_DIR_ENV] = shared.dir
  }

  shared.refs++
  const mine = shared
  let done = false
  return () => {
    if (done) return
    done = true
    if (--mine.refs > 0) return
    delete outputHolder[OUTPUT]
    const leaks = findLeaks(mine.dir)
    if (leaks.length > 0) {
      // a throw here would only be logged ("error during close") and vitest 4 would still exit 0
      process.exitCode = 1
      for (const leak of leaks) log(`SECRET LEAKED: recorded secret #${leak.secret} appears in svc output ${leak.file}`)
      log(`kept the outputs in ${mine.dir} (they hold the secret: delete them after reading)`)
      return
    }

    if (!process.env.SVC_TEST_KEEP) rmSync(mine.dir, {recursive: true, force: true})
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const outputsDone = watchOutputs()
  const clustersDone = await setupClusters(project).catch((error: unknown) => {
    outputsDone()
    throw error
  })
  return async () => {
    try {
      await clustersDone?.()
    } finally {
      outputsDone()
    }
  }
}

async function setupClusters(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const kinds = requestedKinds()
  if (kinds.length === 0 || !runNeedsClusters(project)) {
    project.provide('clusters', {})
    return undefined
  }

  let shared = holder[SHARED]
  if (!shared) {
    shared = {refs: 0, ready: startAll(kinds)}
    holder[SHARED] = shared
  }

  shared.refs++
  let started: Started
  try {
    started = await shared.ready
  } catch (error) {
    shared.refs--
    if (shared.refs === 0) delete holder[SHARED]
    throw error
  }

  project.provide('clusters', started.provided)
  const mine = shared
  let done = false
  return async () => {
    if (done) return
    done = true
    mine.refs--
    if (mine.refs > 0) return
    if (holder[SHARED] === mine) delete holder[SHARED]
    await stopAll(started)
  }
}
