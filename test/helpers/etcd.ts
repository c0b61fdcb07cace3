import {Etcd3} from 'etcd3'

import {openRegistry} from '../../src/lib/registry/index.js'
import type {BackendOptions} from '../../src/lib/registry/options.js'
import type {Registry, WatchEvent} from '../../src/lib/registry/types.js'
import {testCluster} from './clusters.js'
import {hostPort, TcpProxy} from './tcp-proxy.js'

/** The shared etcd test cluster's members, and a key prefix private to the calling test file. */
export function etcdTarget(label: string): {hosts: string[]; prefix: string} {
  const spec = testCluster('etcd').uri.replace(/^etcd:\/\//, '')
  const slash = spec.indexOf('/')
  const hosts = (slash === -1 ? spec : spec.slice(0, slash)).split(',')
  const prefix = `/svc-test/${label}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`
  return {hosts, prefix}
}

/** An etcd3 client of the test's own, to read and write behind svc's back. */
export function rawClient(hosts: readonly string[]): Etcd3 {
  return new Etcd3({
    hosts: hosts.map((h) => `http://${h}`),
    // without a deadline, a call to a frozen member would never end (etcd3 then retries on another member)
    defaultCallOptions: (context) => (context.isStream ? {} : {deadline: Date.now() + 1500}),
  })
}

/** Opens the etcd registry on `hosts`, collecting its diagnostics; `opened` gets it, to close it after the file. */
export async function openEtcd(
  hosts: readonly string[],
  prefix: string,
  opened: Registry[],
  options: Partial<BackendOptions> = {},
): Promise<{registry: Registry; logs: string[]}> {
  const logs: string[] = []
  const registry = await openRegistry(
    {kind: 'etcd', hosts: hosts.map((h) => hostPort(h)), prefix},
    {...options, log: (m) => logs.push(m)},
  )
  opened.push(registry)
  return {registry, logs}
}

/** Collects a watch stream in the background. */
export function collect(stream: AsyncIterable<WatchEvent>): {events: WatchEvent[]; done: Promise<void>} {
  const events: WatchEvent[] = []
  const done = (async () => {
    for await (const event of stream) events.push(event)
  })()
  return {events, done}
}

/** The changes of a watch as `snapshot a,b`, `added c`, ... without status events. */
export const changes = (events: WatchEvent[]): string[] =>
  events.flatMap((e) => {
    if (e.type === 'status') return []
    if (e.type === 'snapshot') return [`snapshot ${e.instances.map((i) => i.id).join(',')}`]
    return [`${e.type} ${e.instance.id}`]
  })

/** One TCP proxy in front of each member for the duration of `fn`. */
export async function withProxies<T>(hosts: readonly string[], fn: (proxies: TcpProxy[]) => Promise<T>): Promise<T> {
  const proxies = await Promise.all(hosts.map((h) => new TcpProxy(h).start()))
  try {
    return await fn(proxies)
  } finally {
    await Promise.all(proxies.map((p) => p.stop()))
  }
}
