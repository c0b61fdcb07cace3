import {watchCounters} from '../../src/lib/registry/core/watch.js'
import {RouteTable, type UpstreamPool} from '../../src/lib/proxy/routes.js'
import type {
  InstanceInput,
  Registry,
  RegistrationHandle,
  RegisterOptions,
  WatchEvent,
} from '../../src/lib/registry/types.js'

/** Registrations in flight at once: enough to keep a backend busy, few enough to stay bounded. */
const REGISTER_CONCURRENCY = 64

/** The service of instance `i` of `n`: five instances a service, as the scale benchmark lays them out. */
export function scaleService(prefix: string, i: number, n: number): string {
  return `${prefix}-${i % Math.max(1, Math.floor(n / 5))}`
}

/** Instance `i` of a registry of `n`: in `scaleService`'s service, on a port of its own (ZooKeeper names znodes by it). */
export function scaleInstance(prefix: string, i: number, n: number): InstanceInput {
  return {service: scaleService(prefix, i, n), id: `i${i}`, address: '127.0.0.1', port: 10_000 + i}
}

/** Registers `n` instances over n/5 services through the library, `concurrency` at a time. */
export async function registerMany(
  registry: Registry,
  n: number,
  prefix: string,
  opts: RegisterOptions = {},
  concurrency = REGISTER_CONCURRENCY,
): Promise<RegistrationHandle[]> {
  const handles: RegistrationHandle[] = []
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++
      handles.push(await registry.register(scaleInstance(prefix, i, n), opts))
    }
  }

  await Promise.all(Array.from({length: Math.min(concurrency, n)}, worker))
  return handles
}

/** A route table that opens no connection: the proxy's table, counted. */
export function countingTable(): RouteTable<UpstreamPool> {
  const pool: UpstreamPool = {async close() {}, async destroy() {}}
  return new RouteTable<UpstreamPool>({strategy: 'round-robin', createPool: () => pool})
}

/** A watch of everything fed into a route table, with the events it saw; `stop` ends it. */
export interface CountedWatch {
  table: RouteTable<UpstreamPool>
  events: WatchEvent[]
  /** Resolves with the snapshot's size once it is in. */
  snapshot: Promise<number>
  stop(): void
}

export function countedWatch(registry: Registry): CountedWatch {
  const controller = new AbortController()
  const table = countingTable()
  const events: WatchEvent[] = []
  const settle: {resolve?: (n: number) => void; reject?: (error: unknown) => void} = {}
  const snapshot = new Promise<number>((resolve, reject) => {
    settle.resolve = resolve
    settle.reject = reject
  })
  const reject = (error: unknown): void => settle.reject?.(error)
  const follow = async (): Promise<void> => {
    for await (const event of registry.watch(undefined, {signal: controller.signal})) {
      events.push(event)
      table.apply(event)
      if (event.type === 'snapshot') settle.resolve?.(event.instances.length)
    }

    reject(new Error('the watch ended before its snapshot'))
  }

  follow().catch(reject)
  return {table, events, snapshot, stop: () => controller.abort()}
}

/** What a quiet period must leave unchanged: watch changes (this process's) and route-table work. */
export interface QuietCounters {
  changes: number
  rebuilds: number
  updates: number
}

export function quietCounters(table: RouteTable<UpstreamPool>): QuietCounters {
  return {changes: watchCounters().changes, rebuilds: table.rebuilds, updates: table.updates}
}

/** Closes every handle, `REGISTER_CONCURRENCY` at a time. */
export async function closeAll(handles: RegistrationHandle[]): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < handles.length) await handles[next++]!.close().catch(() => {})
  }

  await Promise.all(Array.from({length: Math.min(REGISTER_CONCURRENCY, handles.length)}, worker))
}
