import {BugError} from '../../errors.js'
import type {Binding, Driver, DriverEvent, DriverWatchSink, OwnedRecord, ReadResult} from '../core/driver.js'
import {isSkipped} from '../core/driver.js'
import {foreignRecords} from '../core/foreign.js'
import type {BackendOptions} from '../options.js'
import {describeBackend} from '../spec.js'
import type {ClusterInfo, ServiceSummary} from '../types.js'
import {EtcdConnection, type EtcdSpec} from './client.js'
import {describeCluster} from './cluster.js'
import {LeaseBinding, MIN_TTL_MS} from './lease.js'
import {decodeRecord, instanceKey, readRange, servicePrefix} from './records.js'
import {PrefixWatch} from './watch.js'

const DEFAULT_TTL_MS = 10_000

/** The etcd v3 driver: one key per instance under `<prefix>/<service>/<id>`, on a lease its owner keeps alive. */
export function createDriver(spec: EtcdSpec, options: BackendOptions): Driver {
  return new EtcdDriver(spec, options)
}

class EtcdDriver implements Driver {
  readonly kind = 'etcd' as const
  readonly nativeChecks = false
  readonly description: string
  readonly limits = {defaultTtlMs: DEFAULT_TTL_MS, minTtlMs: MIN_TTL_MS, refreshApplies: true}
  private readonly connection: EtcdConnection
  private readonly secured: boolean
  private readonly bindings = new Map<string, LeaseBinding>()
  private readonly watches = new Map<PrefixWatch, DriverWatchSink>()
  private readonly listeners = new Set<(event: DriverEvent) => void>()

  constructor(spec: EtcdSpec, options: BackendOptions) {
    this.description = describeBackend(spec)
    this.connection = new EtcdConnection(spec, options)
    this.secured = spec.tls !== undefined || spec.auth !== undefined
    this.connection.pool.onChange((detail) => this.emit({type: 'member-changed', detail}))
  }

  async ping(): Promise<void> {
    await this.connection.op((client) => client.maintenance.status())
  }

  async write(record: OwnedRecord): Promise<Binding> {
    const key = this.key(record.instance.service, record.instance.id)
    const binding: LeaseBinding = await LeaseBinding.create(this.connection, key, record, (detail) => {
      if (this.bindings.get(key) === binding) this.bindings.delete(key)
      this.emit({type: 'lease-lost', detail})
    })
    this.bindings.set(key, binding)
    return binding
  }

  async rewrite(record: OwnedRecord, binding: Binding): Promise<void> {
    if (!(binding instanceof LeaseBinding)) throw new BugError('an etcd record was rewritten under a foreign binding')
    await binding.put(record)
  }

  async read(service: string, id: string): Promise<ReadResult | undefined> {
    const key = this.key(service, id)
    const {kvs} = await this.connection.op((client) => client.get(key).exec())
    const kv = kvs[0]
    return kv ? decodeRecord(this.connection.prefix, key, kv.value.toString()) : undefined
  }

  async remove(service: string, id: string): Promise<boolean> {
    const key = this.key(service, id)
    // etcd3 sends a delete again on another member when an answer is lost, and the second one finds nothing:
    // a key seen just before is reported removed whichever of them removed it
    const {kvs} = await this.connection.op((client) => client.get(key).exec())
    const kv = kvs[0]
    if (!kv) return false
    const own = this.bindings.get(key)
    if (own && own.leaseId === kv.lease) {
      // a lease of this process goes with its key, instead of lingering until its TTL
      this.bindings.delete(key)
      await own.revoke()
    } else {
      await this.connection.op((client) => client.delete().key(key).exec())
    }

    return true
  }

  async listServices(): Promise<ServiceSummary[]> {
    const {records} = await readRange(this.connection, `${this.connection.prefix}/`)
    const byName = new Map<string, ServiceSummary>()
    // the core's foreign-record rule, shared through the log: each unreadable key is reported once
    const foreign = foreignRecords(this.connection.options.log)
    for (const record of records.values()) {
      if (isSkipped(record)) {
        foreign.skip(record)
        continue
      }

      const {health, service} = record.instance
      const summary = byName.get(service) ?? {name: service, instances: 0, passing: 0}
      summary.instances++
      if (health === 'passing') summary.passing++
      byName.set(service, summary)
    }

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
    await Promise.all([...this.bindings.values()].map((binding) => binding.release()))
    this.bindings.clear()
    this.listeners.clear()
    this.connection.close()
  }

  private key(service: string, id: string): string {
    return instanceKey(this.connection.prefix, service, id)
  }

  private emit(event: DriverEvent): void {
    for (const listener of this.listeners) listener(event)
  }
}
