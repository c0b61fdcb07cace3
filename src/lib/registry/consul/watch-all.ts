import type Consul from 'consul'

import type {DriverWatchSink, ReadResult} from '../core/driver.js'
import {foreignRecords} from '../core/foreign.js'
import {backoffDelay, sleep} from '../options.js'
import type {Agents, ReadOptions, RequestExtra} from './agents.js'
import type {Lane} from './clients.js'
import {type BulkProgress, modifiedIndex, readBulk} from './bulk.js'
import {catalogTags, ChangeTracker, checkLines} from './changes.js'
import {ConsulError, toConsulError} from './errors.js'
import {catalogNames, toRecords} from './records.js'

export type Query = (client: Consul, extra: RequestExtra, read: ReadOptions) => Promise<unknown>

/** The blocking loops and the retry rule of the watch (watch.ts). */
export interface Loops {
  loop(
    signal: AbortSignal,
    query: Query,
    onValue: (body: unknown, index: bigint, previous: bigint) => void,
    from?: bigint,
    lane?: Lane,
  ): Promise<void>
  retrying<T>(signal: AbortSignal, task: (agent: number) => Promise<T>): Promise<T>
}

/** At most this many services are read at once, whatever the size of a change. */
const READ_CONCURRENCY = 8
/** A catalog change the checks do not explain (a service registered again with other meta) is looked for after this. */
const EXPLAIN_MS = 250
/** A first snapshot slower than this reports its progress, once a second, as a `connected` status. */
const PROGRESS_MS = 1000

/**
 * A watch of every service with a constant number of connections: one bulk read for the first snapshot, then two
 * blocking queries that say what changed (the checks, the catalog's names and tags), and bounded reads of only the
 * services they name, each published on its own.
 */
export class AllServicesWatch {
  private readonly tracker = new ChangeTracker()
  /** The services published, with the highest ModifyIndex of their instances when last read. */
  private readonly modified = new Map<string, number>()
  private readonly pending = new Set<string>()
  private readonly reading = new Set<string>()
  /** The index of the last checks answer that changed something. */
  private healthChangedAt = 0n
  private readonly timers = new Set<NodeJS.Timeout>()
  private failure?: unknown

  constructor(
    private readonly agents: Agents,
    private readonly sink: DriverWatchSink,
    private readonly loops: Loops,
    private readonly signal: AbortSignal,
  ) {}

  async run(): Promise<void> {
    const stop = this.clearTimers.bind(this)
    this.signal.addEventListener('abort', stop, {once: true})
    try {
      const bulk = await this.firstRead()
      const names = new Set(this.usable([...bulk.entries.keys()]))
      const records: ReadResult[] = []
      for (const name of names) {
        records.push(...toRecords(bulk.entries.get(name)))
        this.modified.set(name, bulk.modified.get(name) ?? 0)
      }

      this.sink.publish(records)
      this.tracker.health(bulk.lines)
      this.tracker.catalog(new Map([...names].map((name) => [name, bulkTags(bulk.entries.get(name))])))
      await Promise.all([
        this.loops.loop(
          this.signal,
          (c, x, read) => c.health.state({state: 'any', ...x, ...read}),
          (body, index) => this.onChecks(body, index),
          bulk.healthIndex,
          'watch',
        ),
        this.loops.loop(
          this.signal,
          (c, x, read) => c.catalog.services({...x, ...read}),
          (body, index, previous) => this.onCatalog(body, index, previous),
          0n,
          'watch',
        ),
      ])
      if (this.failure !== undefined) throw this.failure
    } finally {
      this.signal.removeEventListener('abort', stop)
      stop()
    }
  }

  /** The bulk read of the first snapshot; while slow, how many services it has read of how many. */
  private async firstRead(): ReturnType<typeof readBulk> {
    const progress: BulkProgress = {read: 0}
    let agent = this.agents.active
    let said = ''
    const timer = setInterval(() => {
      if (progress.total === undefined) return
      const line = `agent ${this.agents.name(agent)}; first snapshot: ${progress.read} of ${progress.total} services read`
      if (line !== said) this.sink.status('connected', line)
      said = line
    }, PROGRESS_MS)
    try {
      return await this.loops.retrying(this.signal, (current) => {
        agent = current
        return readBulk(this.agents, current, this.signal, progress)
      })
    } finally {
      clearInterval(timer)
    }
  }

  private clearTimers(): void {
    for (const timer of this.timers) clearTimeout(timer)
  }

  private onChecks(body: unknown, index: bigint): void {
    const {services, all} = this.tracker.health(checkLines(body))
    const changed = all ? [...this.modified.keys(), ...services] : [...services]
    if (changed.length > 0) this.healthChangedAt = index
    this.enqueue(this.usable(changed))
  }

  private onCatalog(body: unknown, index: bigint, previous: bigint): void {
    const names = this.usable(catalogNames(body))
    const all = catalogTags(body)
    const changed = this.tracker.catalog(new Map(names.map((name) => [name, all.get(name) ?? ''])))
    for (const name of changed) {
      if (names.includes(name)) continue
      // gone from the catalog: its last instance left
      this.modified.delete(name)
      this.pending.delete(name)
      this.sink.publish([], name)
    }

    this.enqueue([...changed].filter((name) => names.includes(name)))
    if (changed.size > 0 || previous === 0n) return
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      if (this.healthChangedAt < index) this.explain()
    }, EXPLAIN_MS)
    this.timers.add(timer)
  }

  /** A catalog change without a check change: the services whose instances' ModifyIndex moved, from one bulk read. */
  private explain(): void {
    this.loops
      .retrying(this.signal, (agent) => readBulk(this.agents, agent, this.signal, {read: 0}))
      .then((bulk) => {
        const moved = [...bulk.modified].filter(([name, index]) => index > (this.modified.get(name) ?? 0))
        this.enqueue(this.usable(moved.map(([name]) => name)))
      })
      .catch((error: unknown) => this.fail(error))
  }

  private enqueue(names: readonly string[]): void {
    for (const name of names) this.pending.add(name)
    this.drain()
  }

  /** Reads the pending services, READ_CONCURRENCY at a time; a service named again while read is read once more. */
  private drain(): void {
    for (const name of this.pending) {
      if (this.reading.size >= READ_CONCURRENCY || this.signal.aborted) return
      if (this.reading.has(name)) continue
      this.pending.delete(name)
      this.reading.add(name)
      this.readOne(name)
        .catch((error: unknown) => this.fail(error))
        .finally(() => {
          this.reading.delete(name)
          this.drain()
        })
    }
  }

  private async readOne(name: string): Promise<void> {
    let failures = 0
    for (;;) {
      try {
        const {value} = await this.agents.read(
          (c, x) => c.health.service({service: name, ...x, ...this.agents.reads()}),
          {signal: this.signal, lane: 'watch'},
        )
        if (this.signal.aborted) return
        this.modified.set(name, modifiedIndex(value))
        this.sink.publish(toRecords(value), name)
        return
      } catch (error) {
        if (this.signal.aborted) return
        const failure = error instanceof ConsulError ? error : toConsulError(error, this.agents.errorContext(0))
        if (!failure.transient) throw failure
        await sleep(backoffDelay(this.agents.options.retry, failures++), this.signal)
      }
    }
  }

  /** Names svc can watch: Consul's own and svc's owner services left out, another tool's `a/b` warned about once. */
  private usable(names: readonly string[]): string[] {
    const listed = catalogNames(Object.fromEntries(names.map((name) => [name, []])))
    return foreignRecords(this.agents.options.log)
      .serviceNames(listed.map((name) => ({name})))
      .map((n) => n.name)
  }

  private fail(error: unknown): void {
    if (this.signal.aborted || this.failure !== undefined) return
    this.failure = error
    this.sink.fail(error)
  }
}

/** The tags of a service as /v1/catalog/services lists them: every instance's, once each. */
function bulkTags(entries: ReadonlyArray<Record<string, unknown>> | undefined): string {
  const tags = new Set<string>()
  for (const entry of entries ?? []) {
    const service = entry.Service as {Tags?: unknown} | undefined
    if (Array.isArray(service?.Tags)) for (const tag of service.Tags) if (typeof tag === 'string') tags.add(tag)
  }

  return [...tags].sort().join('\u0000')
}
