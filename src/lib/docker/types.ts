import type {CheckSpec, Health, InstanceInput, ServiceInstance} from '../registry/types.js'

export type DeregisterMode = 'always' | 'on-success'

/** `svc agent` settings; registrator's flags, plus what its users asked for. */
export interface AgentOptions {
  /** This agent's host name: part of default ids and of `source.host`, and what --cleanup matches. */
  hostname: string
  /** --ip: the address to advertise instead of the host binding's. */
  ip?: string
  /** --internal: register exposed ports at the container's own address, not published ones. */
  internal: boolean
  /** --explicit: only containers that name their service (SERVICE_NAME or SERVICE_<port>_NAME). */
  explicit: boolean
  /** --tags: added to every instance. */
  tags: string[]
  /** --network: on multi-network containers, the network whose address to use (SERVICE_NETWORK wins). */
  network?: string
  /** --resync: re-register everything this often; undefined = never. */
  resyncMs?: number
  /** --cleanup: remove registrations this host made whose container is gone (at start-up and on resync). */
  cleanup: boolean
  deregister: DeregisterMode
  /** --ttl: liveness bound passed to the backend (heartbeat, lease, session, TTL check). */
  ttlMs?: number
  /** --ttl-refresh: how often the agent refreshes its registrations' liveness; must be below --ttl. */
  ttlRefreshMs?: number
  /** --retry-attempts: how often to try the backend at start-up; -1 = forever. */
  retryAttempts: number
  retryIntervalMs: number
  /** --swarm: Swarm services are registered from the swarm's state, so their task containers are left out here. */
  swarm?: boolean
}

/** One registration derived from one container port. */
export interface PlannedService {
  /** What to register, `source` set to the container. */
  input: InstanceInput & {id: string; source: NonNullable<InstanceInput['source']>}
  /** From SERVICE_CHECK_HTTP / SERVICE_CHECK_TCP (+ _INTERVAL, _TIMEOUT, _DEREGISTER_AFTER). */
  check?: CheckSpec
  /** From SERVICE_CHECK_TTL: the instance's TTL, kept alive by the agent. */
  ttlMs?: number
}

/** What the agent reports as it works; the log lines, the live view and the metrics are built from these. */
export type AgentEvent = {ts: number} & (
  | {type: 'registered'; instance: ServiceInstance; container: string}
  | {type: 'deregistered'; service: string; id: string; container: string; reason: string}
  | {type: 'health'; service: string; id: string; health: Health; output: string}
  | {type: 'docker'; state: 'connected' | 'reconnecting'; detail: string}
  | {type: 'backend'; state: 'connected' | 'retrying' | 'lost' | 'restored'; detail: string}
  | {type: 'resync'; registered: number; removed: number; durationMs: number}
  | {type: 'event-lag'; ms: number}
  | {type: 'error'; message: string; container?: string}
)

/** An agent event as emitted, before its timestamp is added. */
export type AgentEventBody = AgentEvent extends infer E ? (E extends AgentEvent ? Omit<E, 'ts'> : never) : never

export interface ContainerState {
  id: string
  name: string
  image: string
  state: 'running' | 'paused' | 'stopped'
  services: ServiceInstance[]
}

/** The agent's state at one moment, for the live view. */
export interface AgentSnapshot {
  backend: string
  docker: 'connected' | 'reconnecting'
  containers: ContainerState[]
  events: AgentEvent[]
}
