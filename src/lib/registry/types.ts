export type Health = 'passing' | 'warning' | 'critical' | 'unknown'

export const HEALTH_VALUES: readonly Health[] = ['passing', 'warning', 'critical', 'unknown']

/** Where an instance came from when the agent registered it from a container. */
export interface InstanceSource {
  containerId: string
  containerName: string
  image: string
  host: string
}

/** One registered instance of a service, the same shape on every backend. */
export interface ServiceInstance {
  service: string
  id: string
  address: string
  port: number
  tags: string[]
  meta: Record<string, string>
  health: Health
  source?: InstanceSource
}

/** What a caller registers; `id` defaults to `<service>:<address>:<port>`, health to passing. */
export interface InstanceInput {
  service: string
  id?: string
  address: string
  port: number
  tags?: string[]
  meta?: Record<string, string>
  health?: Health
  source?: InstanceSource
}

/** A health check the backend runs natively (Consul) or the registering process runs itself (others). */
export interface CheckSpec {
  /** Full URL, e.g. http://127.0.0.1:8080/health. */
  http?: string
  /** host:port to open a TCP connection to. */
  tcp?: string
  intervalMs: number
  timeoutMs: number
  /** Consul only: remove the instance after it has been critical this long (Consul's minimum is 1 minute). */
  deregisterAfterMs?: number
}

export type RegistrationState = 'registered' | 'lost' | 'restored' | 'error'

export interface RegisterOptions {
  /**
   * Liveness bound: heartbeat expiry (local), lease TTL (etcd), session timeout (zk), TTL check (consul).
   * Each backend has its own default.
   */
  ttlMs?: number
  /**
   * How often svc refreshes liveness: the local heartbeat, Consul's TTL check, an extra etcd lease keep-alive
   * (etcd3 also keeps the lease alive at a third of its TTL). Default a third of the TTL. ZooKeeper's client pings
   * its session at a third of the session timeout by itself and ignores this. Must be below ttlMs.
   */
  refreshMs?: number
  check?: CheckSpec
  /** Reports keep-alive trouble: the session or lease was lost, was restored, or could not be restored. */
  onStateChange?: (state: RegistrationState, detail: string) => void
}

export interface InstanceChanges {
  tags?: string[]
  meta?: Record<string, string>
}

/** Keeps one registration alive until closed. */
export interface RegistrationHandle {
  readonly instance: ServiceInstance
  /** Sets the health the registry shows (used where the backend has no native check). */
  setHealth(health: Health, output?: string): Promise<void>
  /** Replaces the tags and/or meta of the registered instance in place (watchers see one `changed`). */
  update(changes: InstanceChanges): Promise<void>
  /** Stops keeping the instance alive and, unless `deregister` is false, removes it now. */
  close(opts?: {deregister?: boolean}): Promise<void>
}

/** What `deregister` found: whether a record was removed, and which process owned it. */
export interface Removal {
  removed: boolean
  /** The process that wrote the record, when svc wrote it; `alive`: it will restore the record. */
  owner?: {host: string; pid: number; alive: boolean}
}

export interface ServiceSummary {
  name: string
  instances: number
  passing: number
}

export type WatchEvent =
  | {type: 'snapshot'; instances: ServiceInstance[]}
  | {type: 'added'; instance: ServiceInstance}
  | {type: 'removed'; instance: ServiceInstance}
  | {type: 'changed'; instance: ServiceInstance; previous: ServiceInstance}
  | {type: 'status'; state: 'connected' | 'reconnecting' | 'session-lost'; detail: string}

export interface WatchOptions {
  signal?: AbortSignal
}

export type MemberRole = 'leader' | 'follower' | 'standalone' | 'unknown'

export interface ClusterMember {
  name: string
  /** The client address svc talks to (host:port). */
  address: string
  role: MemberRole
  reachable: boolean
}

export interface ClusterInfo {
  backend: BackendKind
  members: ClusterMember[]
  /** Address of the leader, when one is known. */
  leader?: string
}

export type BackendKind = 'local' | 'zk' | 'consul' | 'etcd'

/** The interface every backend implements; the contract suite runs unchanged against each. */
export interface Registry {
  readonly kind: BackendKind
  /** The backend runs HTTP/TCP checks itself (Consul); elsewhere the registering process runs them. */
  readonly nativeChecks: boolean
  /** Backend URI without secrets, for messages. */
  readonly description: string
  /** Resolves when the backend answers; throws BackendUnavailableError otherwise. */
  ping(): Promise<void>
  register(input: InstanceInput, opts?: RegisterOptions): Promise<RegistrationHandle>
  /** Removes one instance, whoever owns it, and says who owned it (a live owner restores it). */
  deregister(service: string, id: string): Promise<Removal>
  listServices(): Promise<ServiceSummary[]>
  listInstances(service: string): Promise<ServiceInstance[]>
  /** Changes of one service (or all when `service` is undefined), starting with the current snapshot. */
  watch(service?: string, opts?: WatchOptions): AsyncIterable<WatchEvent>
  cluster(): Promise<ClusterInfo>
  /** Releases sessions, leases, sockets and timers; registrations made through this registry end. */
  close(): Promise<void>
}
