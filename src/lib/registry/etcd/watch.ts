import type {IWatchResponse, Watcher} from 'etcd3'

import {formatError, isTransient} from '../../errors.js'
import {backoffDelay, sleep} from '../options.js'
import type {DriverWatchSink, ReadResult} from '../core/driver.js'
import type {EtcdConnection} from './client.js'
import {cleanMessage} from './errors.js'
import {Range} from 'etcd3'

import {decodeRecord, keySegment, scanRange} from './records.js'

const WATCH_CANCEL_TIMEOUT_MS = 1000

/** Records by the service their key is filed under, then by key. */
type Groups = Map<string, Map<string, ReadResult>>

/**
 * One etcd prefix watch: a paged range read at revision R, then a watch from R + 1 whose event batches update the
 * state from the events' own key-values (no read) and publish only the services they name. etcd3 reconnects the
 * watch and resumes it by itself; after a reconnect the range is read again (events the read already covers are
 * skipped), which also covers a resumption that etcd3 got wrong.
 */
export class PrefixWatch {
  private groups: Groups = new Map()
  /** Events up to this revision are reflected in `groups` by the last range read. */
  private readRevision = 0
  private watcher?: Watcher
  /** Watch responses that arrive while a range read is in flight. */
  private buffered?: IWatchResponse[]
  private generation = 0
  private disconnected = false
  private stopped = false
  private stopping?: Promise<void>
  private readonly stopSignal = new AbortController()

  constructor(
    private readonly connection: EtcdConnection,
    private readonly range: string,
    private readonly sink: DriverWatchSink,
    private readonly service: string | undefined,
    private readonly onReconnected: (detail: string) => void,
  ) {}

  start(): void {
    this.establish(true).catch((error: unknown) => this.fail(error))
  }

  stop(): Promise<void> {
    if (this.stopping) return this.stopping
    this.stopped = true
    this.generation++
    this.stopSignal.abort()
    const {watcher} = this
    this.watcher = undefined
    this.stopping = watcher ? withTimeout(watcher.cancel(), WATCH_CANCEL_TIMEOUT_MS) : Promise.resolve()
    return this.stopping
  }

  /** Reads the range, publishes it, and watches from the next revision; retried until it works or fails for good. */
  private async establish(initial: boolean): Promise<void> {
    const generation = ++this.generation
    for (let attempt = 0; ; attempt++) {
      try {
        const {groups, revision} = await this.read()
        if (this.stopped || generation !== this.generation) return
        this.groups = groups
        this.readRevision = revision
        this.buffered = undefined
        if (!initial) this.sink.status('connected', `watching ${this.range} again from revision ${revision + 1}`)
        this.publishAll()
        this.attachWatcher(revision + 1)
        return
      } catch (error) {
        if (this.stopped || generation !== this.generation) return
        if (initial || !isTransient(error)) {
          this.fail(error)
          return
        }

        if (attempt === 0) this.sink.status('reconnecting', `cannot read ${this.range}: ${formatError(error)}`)
        await sleep(backoffDelay(this.connection.options.retry, attempt), this.stopSignal.signal)
      }
    }
  }

  private attachWatcher(fromRevision: number): void {
    const watcher = this.connection.get().watch().prefix(this.range).startRevision(String(fromRevision)).watcher()
    this.watcher = watcher
    watcher.on('data', (response) => {
      if (this.watcher !== watcher) return
      if (this.buffered) this.buffered.push(response)
      else this.publishServices(this.apply(response))
    })
    watcher.on('disconnected', (error) => {
      if (this.watcher !== watcher || this.disconnected) return
      this.disconnected = true
      this.generation++
      this.buffered = undefined
      this.sink.status('reconnecting', `watch stream lost (${cleanMessage(error)}); resuming`)
    })
    watcher.on('connected', () => {
      if (this.watcher !== watcher || !this.disconnected) return
      this.disconnected = false
      this.resync().catch((error: unknown) => this.fail(error))
    })
    watcher.on('error', (error) => {
      // etcd cancelled the watch (its history was compacted past our revision, or access was revoked); etcd3 has
      // already dropped the watcher, so it is not cancelled again
      if (this.watcher !== watcher) return
      this.watcher = undefined
      this.disconnected = false
      this.connection.options.log(
        `etcd: watch on ${this.range} was cancelled (${cleanMessage(error)}); reading it again`,
      )
      this.establish(false).catch((error_: unknown) => this.fail(error_))
    })
  }

  /** After etcd3 resumed the watch: read the range again and keep only the newer of the replayed events. */
  private async resync(): Promise<void> {
    const generation = ++this.generation
    this.buffered = []
    let read: {groups: Groups; revision: number} | undefined
    try {
      read = await this.read()
    } catch (error) {
      // the resumed stream alone is still correct unless etcd3 lost events; keep going with it
      this.connection.options.log(`etcd: cannot read ${this.range} after reconnecting (${formatError(error)})`)
    }

    if (this.stopped || generation !== this.generation) return
    const pending = this.buffered ?? []
    this.buffered = undefined
    if (read) {
      this.groups = read.groups
      this.readRevision = read.revision
    }

    for (const response of pending) this.apply(response)
    const detail = `watch on ${this.range} resumed at revision ${this.readRevision + 1}`
    this.sink.status('connected', detail)
    this.onReconnected(detail)
    this.publishAll()
  }

  /** The range, page by page into the groups it is kept in (the pages are not held). */
  private async read(): Promise<{groups: Groups; revision: number}> {
    const groups: Groups = new Map()
    const revision = await scanRange(this.connection, Range.prefix(this.range), (key, kv) => {
      this.group(groups, key).set(key, decodeRecord(this.connection.prefix, key, kv.value.toString()))
    })
    return {groups, revision}
  }

  private group(groups: Groups, key: string): Map<string, ReadResult> {
    const name = keySegment(this.connection.prefix, key)
    let group = groups.get(name)
    if (!group) {
      group = new Map()
      groups.set(name, group)
    }

    return group
  }

  /** Applies one watch response from its events' key-values; returns the services it changed. */
  private apply(response: IWatchResponse): Set<string> {
    const changed = new Set<string>()
    for (const event of response.events) {
      if (Number(event.kv.mod_revision) <= this.readRevision) continue
      const key = event.kv.key.toString()
      const name = keySegment(this.connection.prefix, key)
      if (event.type === 'Put') {
        this.group(this.groups, key).set(key, decodeRecord(this.connection.prefix, key, event.kv.value.toString()))
      } else {
        const group = this.groups.get(name)
        group?.delete(key)
        if (group?.size === 0) this.groups.delete(name)
      }

      changed.add(name)
    }

    return changed
  }

  /** The full state of everything watched. */
  private publishAll(): void {
    if (this.sink.closed) return
    const all: ReadResult[] = []
    for (const group of this.groups.values()) for (const record of group.values()) all.push(record)
    this.sink.publish(all, this.service)
  }

  /** The full state of each service an event batch named, and of no other. */
  private publishServices(names: Set<string>): void {
    for (const name of names) {
      if (this.sink.closed) return
      this.sink.publish([...(this.groups.get(name)?.values() ?? [])], this.service ?? name)
    }
  }

  private fail(error: unknown): void {
    this.stop().catch(() => {})
    this.sink.fail(this.connection.toError(error))
  }
}

async function withTimeout(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms)
  })
  try {
    await Promise.race([promise.catch(() => {}), timeout])
  } finally {
    clearTimeout(timer)
  }
}
