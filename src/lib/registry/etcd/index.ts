import {BugError} from '../../errors.js'
import {type IKeyValue, Range} from 'etcd3'

import {instanceKey as recordKey} from '../core/diff.js'
import type {Binding, Driver, DriverEvent, DriverWatchSink, OwnedRecord, ReadResult, RecordKey} from '../core/driver.js'
import {isSkipped} from '../core/driver.js'
import {foreignRecords} from '../core/foreign.js'
import type {BackendOptions} from '../options.js'
import {describeBackend} from '../spec.js'
import type {ClusterInfo, ServiceSummary} from '../types.js'
import {EtcdConnection, type EtcdSpec} from './client.js'
import {describeCluster} from './cluster.js'
import type {EarlyHandshakes} from './handshake.js'
import {KeyBinding, type LeaseHolder} from './binding.js'
import {leaseSeconds, MIN_TTL_MS, SharedLease} from './lease.js'
import {KeyReader} from './reads.js'
import {decodeRecord, encodeRecord, instanceKey, readRange, scanRange, servicePrefix} from './records.js'
import {PrefixWatch} from './watch.js'

const DEFAULT_TTL_MS = 10_000
/** A put that raced with its lease's end is made again on a new lease this many times. */
const PUT_ROUNDS = 3

/**
 * The etcd v3 driver: one key per instance under `<prefix>/<service>/<id>`, every key of the registry on one lease
 * (per TTL) that the registry keeps alive, as etcd's own clients do per process or session.
 */
/** `early`: the handshakes openRegistry started before it loaded this module, for the first choice of a member. */
export function createDriver(spec: EtcdSpec, options: BackendOptions, early?: EarlyHandshakes): Driver {
  return new EtcdDriver(spec, options, early)
}

/** A shared lease being granted, or granted. */
interface LeaseEntry {
  granting: Promise<SharedLease>
  lease?: SharedLease
}

class EtcdDriver implements Driver, LeaseHolder {
  readonly kind = 'etcd' as const
  readonly nativeChecks = false
  readonly description: string
  readonly limits = {defaultTtlMs: DEFAULT_TTL_MS, minTtlMs: MIN_TTL_MS, refreshApplies: true}
  private readonly connection: EtcdConnection
  private readonly secured: boolean
  private readonly bindings = new Map<string, KeyBinding>()
  /** The shared lease of each TTL (in seconds), granted once however many records wait for it. */
  private readonly leases = new Map<number, LeaseEntry>()
  private readonly granted = new Set<SharedLease>()
  private readonly reader: KeyReader
  private readonly watches = new Map<PrefixWatch, DriverWatchSink>()
  private readonly listeners = new Set<(event: DriverEvent) => void>()

  constructor(spec: EtcdSpec, options: BackendOptions, early?: EarlyHandshakes) {
    this.description = describeBackend(spec)
    this.connection = new EtcdConnection(spec, options, early)
    this.reader = new KeyReader(this.connection)
    this.secured = spec.tls !== undefined || spec.auth !== undefined
    this.connection.pool.onChange((detail) => this.emit({type: 'member-changed', detail}))
  }

  async ping(): Promise<void> {
    await this.connection.op((client) => client.maintenance.status())
  }

  async write(record: OwnedRecord): Promise<Binding> {
    const key = this.key(record.instance.service, record.instance.id)
    const value = encodeRecord(record)
    for (let round = 1; ; round++) {
      const lease = await this.leaseFor(leaseSeconds(record.ttlMs))
      await lease.put(key, value)
      // a lease that ended meanwhile (lost, or released by its last other key) keeps nothing alive: put it again
      if (lease.dead && round < PUT_ROUNDS) continue
      const binding = new KeyBinding(this.connection, this, lease, key, record)
      this.bindings.set(key, binding)
      return binding
    }
  }

  async rewrite(record: OwnedRecord, binding: Binding): Promise<void> {
    if (!(binding instanceof KeyBinding)) throw new BugError('an etcd record was rewritten under a foreign binding')
    await binding.put(record)
  }

  async read(service: string, id: string): Promise<ReadResult | undefined> {
    const key = this.key(service, id)
    const kv = await this.reader.get(key)
    return kv ? decodeRecord(this.connection.prefix, key, kv.value.toString()) : undefined
  }

  async readMany(keys: readonly RecordKey[]): Promise<Map<string, ReadResult>> {
    const names = new Map<string, string>()
    for (const k of keys) names.set(this.key(k.service, k.id), recordKey(k))
    const found = new Map<string, ReadResult>()
    for (const [key, kv] of await this.reader.getMany(new Set(names.keys()))) {
      found.set(names.get(key)!, decodeRecord(this.connection.prefix, key, kv.value.toString()))
    }

    return found
  }

  async remove(service: string, id: string): Promise<boolean> {
    const key = this.key(service, id)
    // etcd3 sends a delete again on another member when an answer is lost, and the second one finds nothing:
    // a key seen just before is reported removed whichever of them removed it
    const kv = await this.reader.get(key)
    if (!kv) return false
    await this.connection.op((client) => client.delete().key(key).exec())
    const own = this.bindings.get(key)
    if (own && own.lease.leaseId === kv.lease) {
      own.forget()
      // the shared lease goes with the last key of this process on it, instead of lingering until its TTL
      this.detach(own, 'revoke')
    }

    return true
  }

  async listServices(): Promise<ServiceSummary[]> {
    const byName = new Map<string, ServiceSummary>()
    // the core's foreign-record rule, shared through the log: each unreadable key is reported once
    const foreign = foreignRecords(this.connection.options.log)
    // counted page by page: the registry is never held whole
    await scanRange(this.connection, Range.prefix(`${this.connection.prefix}/`), (key, kv) => {
      const record = decodeRecord(this.connection.prefix, key, kv.value.toString())
      if (isSkipped(record)) {
        foreign.skip(record)
        return
      }

      const {health, service} = record.instance
      const summary = byName.get(service) ?? {name: service, instances: 0, passing: 0}
      summary.instances++
      if (health === 'passing') summary.passing++
      byName.set(service, summary)
    })
    return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name))
  }

  async listRecords(service: string): Promise<ReadResult[]> {
    const {records} = await readRange(this.connection, servicePrefix(this.connection.prefix, service))
    return [...records.values()]
  }

  watch(service: string | undefined, sink: DriverWatchSink): () => void {
    const range = service === undefined ? `${this.connection.prefix}/` : servicePrefix(this.connection.prefix, service)
    const watch = new PrefixWatch(this.connection, range, sink, service, (detail) =>
      this.emit({type: 'reconnected', detail}),
    )
    this.watches.set(watch, sink)
    watch.start()
    return () => {
      this.watches.delete(watch)
      watch.stop().catch(() => {})
    }
  }

  cluster(): Promise<ClusterInfo> {
    return describeCluster(this.connection, this.secured)
  }

  onEvent(listener: (event: DriverEvent) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  async close(): Promise<void> {
    // watchers still attached to etcd3's watch manager would make it reconnect forever once the client is closed
    await Promise.all([...this.watches.keys()].map((watch) => watch.stop()))
    // the streams end with the registry (a failure without an error ends one cleanly)
    for (const sink of this.watches.values()) sink.fail(undefined)
    this.watches.clear()
    // keep-alives stop here; keys still there expire with their lease
    for (const lease of this.granted) lease.release()
    this.granted.clear()
    this.leases.clear()
    this.bindings.clear()
    this.listeners.clear()
    this.connection.close()
  }

  lookup(key: string): Promise<IKeyValue | undefined> {
    return this.reader.get(key)
  }

  current(key: string): KeyBinding | undefined {
    return this.bindings.get(key)
  }

  detach(binding: KeyBinding, end: 'release' | 'revoke' = 'release'): void {
    if (this.bindings.get(binding.key) === binding) this.bindings.delete(binding.key)
    const {lease} = binding
    lease.keys.delete(binding.key)
    if (lease.keys.size > 0 || lease.dead) return
    this.forgetLease(lease)
    if (end === 'release') lease.release()
    else lease.revoke().catch(() => lease.release())
  }

  /** The shared lease for a TTL: granted on first use, and again once it has ended. */
  private leaseFor(ttlSeconds: number): Promise<SharedLease> {
    const known = this.leases.get(ttlSeconds)
    if (known && !known.lease?.dead) return known.granting
    const entry: LeaseEntry = {
      granting: SharedLease.grant(this.connection, ttlSeconds, (lease, detail) => {
        this.forgetLease(lease)
        this.emit({type: 'lease-lost', detail})
      }).then(
        (lease) => {
          entry.lease = lease
          this.granted.add(lease)
          return lease
        },
        (error: unknown) => {
          // the next write asks again
          if (this.leases.get(ttlSeconds) === entry) this.leases.delete(ttlSeconds)
          throw error
        },
      ),
    }
    this.leases.set(ttlSeconds, entry)
    return entry.granting
  }

  private forgetLease(lease: SharedLease): void {
    this.granted.delete(lease)
    if (this.leases.get(lease.ttlSeconds)?.lease === lease) this.leases.delete(lease.ttlSeconds)
  }

  private key(service: string, id: string): string {
    return instanceKey(this.connection.prefix, service, id)
  }

  private emit(event: DriverEvent): void {
    for (const listener of this.listeners) listener(event)
  }
}
