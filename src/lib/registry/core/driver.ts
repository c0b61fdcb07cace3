import type {BackendKind, CheckSpec, ClusterInfo, Health, ServiceInstance, ServiceSummary} from '../types.js'

/**
 * The contract between the one registration lifecycle (core/registration.ts) and a backend driver. A driver
 * supplies only what really differs between backends; everything else (ownership, presence, uniqueness, the
 * lost/restored report, closed handles, the codec's field checks, the foreign-record rule, the watch diff) is
 * written once in core/.
 */

/** Who keeps a record alive: written into every record svc writes. Other tools' records carry none. */
export interface Owner {
  host: string
  pid: number
  /** Random per process start, so a reused pid is never mistaken for the same owner. */
  nonce: string
}

/** What the lifecycle asks a driver to store: the instance, its owner, and the liveness bound. */
export interface OwnedRecord {
  instance: ServiceInstance
  owner: Owner
  ttlMs: number
  /** How often the lifecycle refreshes liveness (below ttlMs). */
  refreshMs: number
  check?: CheckSpec
}

/** A record as read back: svc's own carry an owner. */
export interface StoredRecord {
  instance: ServiceInstance
  owner?: Owner
}

/** A record the codec could not read; the core skips it with one warning per key, never deletes it. */
export interface SkippedRecord {
  skipped: true
  /** Where it lives (znode path, etcd key, Consul service id, file name): the warning names it. */
  key: string
  reason: string
}

export type ReadResult = StoredRecord | SkippedRecord

/** Which record: a service name and an instance id. */
export interface RecordKey {
  service: string
  id: string
}

export function isSkipped(result: ReadResult): result is SkippedRecord {
  return 'skipped' in result
}

/**
 * A record's binding to the backend's liveness primitive (ZooKeeper session, etcd lease, Consul TTL check,
 * local heartbeat), created by `write`.
 */
export interface Binding {
  /**
   * Re-asserts liveness once (heartbeat touch, TTL-check pass, lease keep-alive; a no-op where the client keeps
   * its session alive by itself). Resolves 'missing' when the backend says the record or its liveness primitive is
   * gone (a 404 from Consul's check pass, an expired lease, a removed file); throws BackendError when it cannot
   * tell (unreachable).
   */
  refresh(): Promise<'ok' | 'missing'>
  /** Stops what the binding holds (a lease of its own, timers). Does not remove the record. */
  release(): Promise<void>
}

/** Events that make the lifecycle check presence at once instead of waiting for the next refresh. */
export type DriverEvent =
  | {type: 'session-lost'; detail: string}
  | {type: 'reconnected'; detail: string}
  | {type: 'lease-lost'; detail: string}
  | {type: 'member-changed'; detail: string}

/** What a driver's native watch reports: the records of the services an event named. */
export interface DriverWatchSink {
  /**
   * The full current records of one service (`service` set) or of everything watched (`service` undefined).
   * Skipped records are passed through for the core to warn about once.
   */
  publish(records: readonly ReadResult[], service?: string): void
  status(state: 'connected' | 'reconnecting' | 'session-lost', detail: string): void
  fail(error: unknown): void
  readonly closed: boolean
}

export interface DriverLimits {
  defaultTtlMs: number
  /** The lowest TTL the backend honours; the core refuses a lower one naming this floor (never below 1 s). */
  minTtlMs: number
  /** Whether a refresh period shorter than the backend's own keep-alive has any effect (ZooKeeper: no). */
  refreshApplies: boolean
}

export interface Driver {
  readonly kind: BackendKind
  /** The backend runs HTTP/TCP checks itself (Consul); elsewhere the registering process runs them. */
  readonly nativeChecks: boolean
  /** Backend URI without secrets, for messages. */
  readonly description: string
  readonly limits: DriverLimits

  ping(): Promise<void>
  /** Creates or replaces the record bound to liveness. The core has already checked ownership. */
  write(record: OwnedRecord): Promise<Binding>
  /** Replaces the content of a record under its binding (tags, meta, health where the backend has no status). */
  rewrite(record: OwnedRecord, binding: Binding): Promise<void>
  /** Sets health where the backend keeps it outside the record (Consul's TTL check); absent elsewhere. */
  setHealth?(record: OwnedRecord, binding: Binding, health: Health, output?: string): Promise<void>
  /** One record; undefined when absent. */
  read(service: string, id: string): Promise<ReadResult | undefined>
  /**
   * Many records in as few backend round trips as the backend allows (one range read, one agent listing), keyed by
   * `instanceKey`; an absent record has no entry. The lifecycle checks the presence of every registration a process
   * holds with one call per refresh period instead of one read each. Absent: the core reads one by one, bounded.
   */
  readMany?(keys: readonly RecordKey[]): Promise<Map<string, ReadResult>>
  /** Removes one record whoever owns it; false when it was absent. */
  remove(service: string, id: string): Promise<boolean>
  listServices(): Promise<ServiceSummary[]>
  /** Every record of one service, skipped ones included. */
  listRecords(service: string): Promise<ReadResult[]>
  /** Starts the native watch; returns the function that stops it. */
  watch(service: string | undefined, sink: DriverWatchSink): () => void
  cluster(): Promise<ClusterInfo>
  /** Subscribes to session, lease, connection and member events; returns the unsubscribe function. */
  onEvent(listener: (event: DriverEvent) => void): () => void
  /** Releases sessions, leases, sockets and timers. */
  close(): Promise<void>
}
