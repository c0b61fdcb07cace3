import type {BalanceStrategy} from '../balancer/strategies.js'
import type {AccessRecord} from './access-format.js'
import type {HashKey} from './hash-key.js'
import type {PassiveHealthOptions, RetryBudgetOptions} from './health.js'
import type {RouteSpec} from './routes.js'

export interface ProxyOptions {
  host: string
  port: number
  strategy: BalanceStrategy
  /** What the hash strategy hashes; the client IP when unset. */
  hashKey?: HashKey
  routes?: readonly RouteSpec[]
  hostRouting?: boolean
  connectTimeoutMs: number
  /** Wait for an upstream's response headers, and between its body chunks. */
  timeoutMs: number
  /** Connections kept to one upstream at most. */
  maxConnectionsPerUpstream?: number
  health?: PassiveHealthOptions
  retryBudget?: RetryBudgetOptions
  /** Size limits and client timeouts; PROXY_LIMITS for what is unset. */
  limits?: Partial<ProxyLimits>
  /** Clients whose forwarding headers (X-Forwarded-*, Forwarded) are kept: other proxies in front of this one. */
  trustedProxy?: (ip: string) => boolean
  /** Gets one record per request when set (the access log, access-log.ts). */
  accessLog?: {write(record: AccessRecord): void}
  /** Diagnostics: ejections, one line each. */
  log?: (line: string) => void
}

export const PROXY_DEFAULTS = {
  host: '127.0.0.1',
  port: 8080,
  strategy: 'round-robin' as BalanceStrategy,
  connectTimeoutMs: 5000,
  timeoutMs: 30_000,
  maxConnectionsPerUpstream: 256,
}

/** What a client may send, and how slowly. */
export interface ProxyLimits {
  /** A request's head (request line and header fields), in bytes: 431 beyond. */
  maxHeaderBytes: number
  /** A request target, in bytes: 414 beyond. */
  maxUrlBytes: number
  /** From a request's first byte to the end of its head: 408 and the connection closed beyond (slow headers). */
  headersTimeoutMs: number
  /** Silence in the middle of a request body while the proxy is ready to read it: 408, connection closed. */
  bodyTimeoutMs: number
  /** A kept-alive connection with no request is closed after this long (node:http's keepAliveTimeout). */
  idleTimeoutMs: number
}

export const PROXY_LIMITS: ProxyLimits = {
  maxHeaderBytes: 16_384,
  maxUrlBytes: 8192,
  headersTimeoutMs: 10_000,
  bodyTimeoutMs: 30_000,
  idleTimeoutMs: 5000,
}
