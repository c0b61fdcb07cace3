import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import type {ClusterKind} from '../../src/lib/cluster/types.js'
import {hasTestCluster, testCluster} from './clusters.js'

export interface TestBackend {
  name: 'local' | ClusterKind
  /** A backend URI private to the calling test file (own directory, base path or prefix). */
  uri: string
  /** The cluster behind it, for fail-over tests. */
  cluster?: ClusterKind
}

const hostsOf = (uri: string): string => uri.replace(/^\w+:\/\//, '').replace(/\/.*$/, '')

const unique = (): string => `t${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`

/**
 * The four backends (or those named), each with a namespace of its own so test files do not see each other's
 * instances. Only the clusters named are looked up; by default, those this run started (SVC_TEST_CLUSTERS).
 */
export function testBackends(
  names: ReadonlyArray<TestBackend['name']> = (['local', 'zk', 'etcd', 'consul'] as const).filter(
    (name) => name === 'local' || hasTestCluster(name),
  ),
): TestBackend[] {
  const base = unique()
  const make: Record<TestBackend['name'], () => TestBackend> = {
    local: () => ({name: 'local', uri: `local://${mkdtempSync(path.join(tmpdir(), 'svc-local-'))}`}),
    zk: () => ({name: 'zk', uri: `zk://${hostsOf(testCluster('zk').uri)}/svc-test/${base}`, cluster: 'zk'}),
    etcd: () => ({name: 'etcd', uri: `etcd://${hostsOf(testCluster('etcd').uri)}/svc-test/${base}`, cluster: 'etcd'}),
    consul: () => ({name: 'consul', uri: `consul://${hostsOf(testCluster('consul').uri)}`, cluster: 'consul'}),
  }
  return names.map((name) => make[name]())
}

/** A service name unique to one test, so Consul (which has no prefix) keeps tests apart too. */
export function uniqueService(label: string): string {
  return `${label}-${unique()}`
}
