import {createServer, type Server, type Socket} from 'node:net'
import {performance} from 'node:perf_hooks'

import {listenAt} from '../metrics/server.js'
import {type AccessRecord, refererAndAgent} from './access-format.js'
import {hashKeyOf, type HashKey} from './hash-key.js'
import {PROXY_DEFAULTS, PROXY_LIMITS, type ProxyLimits, type ProxyOptions} from './options.js'
import {ClientConnection} from './client-connection.js'
import type {Exchange} from './exchange.js'
import {downstreamHeaders} from './headers.js'
import {DEFAULT_RETRY_BUDGET, RetryBudget} from './health.js'
import {ProxyMetrics, type ServiceStats, type UpstreamErrorKind} from './metrics.js'
import {type RouteMatch, RouteTable, type ServiceRoute, type Upstream} from './routes.js'
import {CONTINUE, RETRY_AFTER, STATUS_LINES} from './replies.js'
import {type Refusal, resolveTarget} from './resolve-target.js'
import {splice} from './tunnel.js'
import {ConnectionPool, DEFAULT_IDLE_MS} from './upstream-pool.js'

export {PROXY_DEFAULTS, PROXY_LIMITS, type ProxyLimits, type ProxyOptions} from './options.js'

type Route = ServiceRoute<ConnectionPool>
type Target = Upstream<ConnectionPool>

/** Methods a retry may send again (RFC 9110 9.2.2). */
export const IDEMPOTENT: ReadonlySet<string> = new Set(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'PUT', 'TRACE'])

/** Instances an idempotent request may be tried on after its first fails (the instance leaving, a reset). */
/** Retries of one request on other instances, at most (the node:http engine's too). */
export const MAX_RETRIES = 2

/**
 * The gateway: a net server whose connections are parsed with Node's native HTTP parser; each request goes,
 * through the in-memory route table, to a keep-alive connection pool of its upstream instance (raw sockets, the
 * response parsed only to find its end and rewrite its head). An Upgrade is spliced as raw sockets once the
 * upstream answers 101.
 * Nothing on the request path talks to the registry.
 */
export class ProxyServer {
  readonly table: RouteTable<ConnectionPool>
  readonly metrics: ProxyMetrics
  readonly server: Server
  readonly connections = new Set<ClientConnection>()
  readonly limits: ProxyLimits
  readonly trustedProxy: ((ip: string) => boolean) | undefined
  draining = false
  private inflight = 0
  private readonly tunnels = new Set<Socket>()
  private readonly budget: RetryBudget
  private readonly budgetTimer: NodeJS.Timeout
  private readonly timeoutTimer: NodeJS.Timeout
  private readonly hashKey: HashKey | undefined
  private readonly hostRouting: boolean
  private readonly accessLog: {write(record: AccessRecord): void} | undefined
  /** Requests note when they go upstream (for the access log's upstream time); off when nothing reads it. */
  readonly timing: boolean
  private idle: (() => void) | undefined

  constructor(private readonly opts: ProxyOptions) {
    this.hashKey = opts.strategy === 'hash' ? (opts.hashKey ?? {kind: 'ip'}) : undefined
    this.hostRouting = opts.hostRouting ?? false
    this.accessLog = opts.accessLog
    this.timing = opts.accessLog !== undefined
    this.budget = new RetryBudget(opts.retryBudget ?? DEFAULT_RETRY_BUDGET)
    this.budgetTimer = setInterval(() => this.budget.tick(), 1000)
    this.budgetTimer.unref()
    this.limits = {...PROXY_LIMITS, ...opts.limits}
    this.trustedProxy = opts.trustedProxy
    // one timer for every connection's head and body deadlines, not one per request
    const {headersTimeoutMs, bodyTimeoutMs} = this.limits
    this.timeoutTimer = setInterval(
      () => this.checkTimeouts(),
      Math.max(20, Math.min(1000, Math.floor(Math.min(headersTimeoutMs, bodyTimeoutMs) / 4))),
    )
    this.timeoutTimer.unref()
    this.table = new RouteTable<ConnectionPool>({
      strategy: opts.strategy,
      routes: opts.routes,
      hostRouting: opts.hostRouting,
      health: opts.health,
      createPool: (_origin, instance) =>
        new ConnectionPool({
          host: instance.address,
          port: instance.port,
          max: opts.maxConnectionsPerUpstream ?? PROXY_DEFAULTS.maxConnectionsPerUpstream,
          connectTimeoutMs: opts.connectTimeoutMs,
          timeoutMs: opts.timeoutMs,
          idleMs: DEFAULT_IDLE_MS,
        }),
      onEject: (route, upstream, ms) => {
        this.metrics.ejections.inc({service: route.name, instance: upstream.id})
        opts.log?.(`ejected ${route.name} ${upstream.id} (${upstream.hostPort}) for ${ms} ms after repeated failures`)
      },
    })
    this.metrics = new ProxyMetrics(this.table, () => this.active)
    this.server = createServer({allowHalfOpen: true}, (socket) => {
      this.connections.add(new ClientConnection(this, socket))
    })
  }

  /** Starts listening; resolves with the bound address (host:port). */
  async listen(): Promise<string> {
    return listenAt(this.server, this.opts.host, this.opts.port, 'listen', '--listen')
  }

  private checkTimeouts(): void {
    const now = performance.now()
    for (const conn of this.connections) conn.checkTimeouts(now, this.limits)
  }

  /** Requests and tunnels in flight. */
  get active(): number {
    return this.inflight + this.tunnels.size
  }

  /**
   * Stops accepting, lets requests in flight finish (connections close after their response), then closes every
   * connection and pool. Resolves with the number of requests and tunnels cut at the deadline.
   */
  async drain(timeoutMs: number): Promise<number> {
    this.draining = true
    clearInterval(this.budgetTimer)
    clearInterval(this.timeoutTimer)
    const closed = new Promise<void>((resolve) => {
      if (this.server.listening) this.server.close(() => resolve())
      else resolve()
    })
    for (const conn of this.connections) conn.closeIfIdle()
    if (this.active > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs)
        this.idle = () => {
          if (this.active > 0) return
          clearTimeout(timer)
          resolve()
        }
      })
    }

    const cut = this.active
    this.idle = undefined
    for (const socket of this.tunnels) socket.destroy()
    for (const conn of this.connections) conn.socket.destroy()
    await closed
    await this.table.close(cut > 0)
    return cut
  }

  /** Routes a request and sends it on its way (or answers it here). */
  start(ex: Exchange): void {
    ex.started = performance.now()
    if (ex.refusal !== undefined) {
      this.reply(ex, undefined, ex.refusal.status, {error: ex.refusal.error})
      return
    }

    // a tunnel opened now would only be cut at the drain's deadline
    if (ex.upgrade && this.draining) {
      this.reply(ex, undefined, 503, {error: 'svc proxy is shutting down'}, RETRY_AFTER)
      return
    }

    const match = this.route(ex, ex.host)
    if (match === undefined) return

    const {route} = match
    if (route === undefined) {
      this.reply(ex, undefined, 404, {error: `unknown service "${match.service}"`, service: match.service})
      return
    }

    const key = this.hashKey === undefined ? undefined : hashKeyOf(this.hashKey, ex.rawHeaders, ex.conn.remoteAddress)
    const upstream = route.balancer.pick(key)
    if (upstream === undefined) {
      this.reply(
        ex,
        route,
        503,
        {
          error: `no healthy instance of "${route.name}"`,
          service: route.name,
          instances: route.upstreams.size,
        },
        RETRY_AFTER,
      )
      return
    }

    ex.route = route
    ex.upstream = upstream
    ex.key = key
    ex.path = match.path
    ex.forwarded = true
    this.inflight++
    this.budget.request()
    upstream.inflight++
    if (ex.expectContinue && ex.minor >= 1 && !ex.requestDone) ex.downstream.write(CONTINUE, 'latin1')
    upstream.pool.acquire(ex)
  }

  /** Where a request goes, or undefined once it was answered here (see `resolve`). */
  private route(ex: Exchange, host: string | undefined): RouteMatch<ConnectionPool> | undefined {
    const found = this.resolve(ex.url, host)
    if (!('status' in found)) return found
    if (found.close) ex.closeAfter = true
    this.reply(ex, undefined, found.status, {error: found.error})
    return undefined
  }

  private resolve(url: string, host: string | undefined): RouteMatch<ConnectionPool> | Refusal {
    return resolveTarget(this.table, url, host, {maxUrlBytes: this.limits.maxUrlBytes, hostRouting: this.hostRouting})
  }

  /** An attempt failed: retry it elsewhere when that is safe, else answer 502/504 (or cut a started response). */
  failed(ex: Exchange, error: Error, reused: boolean): void {
    const route = ex.route!
    const upstream = ex.upstream!
    const kind = errorKind(error)
    const code = (error as NodeJS.ErrnoException).code
    const left = code === 'EPOOLCLOSED' || upstream.pool.closed
    if (reused && canResend(ex, kind, left)) {
      // a kept-alive connection the upstream closed as the request went out: not the instance's fault, send
      // it again on another connection of the same instance (once)
      ex.resent = true
      upstream.pool.acquire(ex)
      return
    }

    upstream.inflight--
    if (code !== 'EPOOLCLOSED') {
      this.metrics.upstreamErrors.inc({service: route.name, instance: upstream.id, kind})
      route.outcome(upstream, true)
    }

    // a request that failed because its instance left the table is retried outside the budget: churn is not overload
    if (mayRetry(ex, kind, left, code) && (left || this.budget.tryRetry())) {
      ex.tried ??= new Set()
      ex.tried.add(upstream)
      const other = route.balancer.pickUntried(ex.tried, ex.key)
      if (other !== undefined) {
        ex.retries++
        ex.upstream = other
        other.inflight++
        this.metrics.retries.inc({service: route.name})
        other.pool.acquire(ex)
        return
      }
    }

    if (ex.responseStarted) {
      ex.downstream.destroy()
      this.settle(ex, ex.status)
      return
    }

    const status = kind === 'timeout' ? 504 : 502
    ex.reply(status, {
      error: `${status === 504 ? 'upstream timed out' : 'upstream failed'}: ${error.message}`,
      service: route.name,
      instance: upstream.id,
    })
    this.settle(ex, status)
    if (ex.requestDone || ex.closeAfter) ex.conn.done(ex)
    else ex.conn.resume()
  }

  /** A forwarded request ended (answered, failed or abandoned by the client): count it, log it, release its slot. */
  settle(ex: Exchange, status: number): void {
    if (ex.settled) return
    ex.settled = true
    this.inflight--
    this.finish(ex, this.metrics.stats(ex.route), status, ex.upstream)
    if (this.idle !== undefined) this.idle()
  }

  /**
   * The upstream answered an Upgrade request with 101: the client gets the 101's head (its Upgrade and Connection
   * kept), and the two sockets are spliced, each closed after the tunnel idles for the upstream timeout.
   */
  tunnel(ex: Exchange, up: Socket, rest: Buffer, reason: string, headers: string[]): void {
    const {conn} = ex
    const socket = conn.socket
    const upstream = ex.upstream!
    conn.tunnelled = true
    conn.queue = []
    ex.status = 101
    ex.responseStarted = true
    let upgrade = ''
    for (let i = 0; i < headers.length; i += 2) if (headers[i]!.toLowerCase() === 'upgrade') upgrade = headers[i + 1]!
    socket.write(
      (STATUS_LINES[101] ?? `HTTP/1.1 101 ${reason}\r\n`) +
        downstreamHeaders(headers).block +
        'connection: upgrade\r\nupgrade: ' +
        upgrade +
        '\r\n\r\n',
      'latin1',
    )
    ex.route!.outcome(upstream, false)
    this.tunnels.add(socket)
    splice(socket, up, ex.head ?? Buffer.alloc(0), rest, this.opts.timeoutMs, () => {
      this.tunnels.delete(socket)
      upstream.inflight--
      this.idle?.()
    })
    this.settle(ex, 101)
  }

  private reply(
    ex: Exchange,
    route: Route | undefined,
    status: number,
    body: Record<string, unknown>,
    extra = '',
  ): void {
    ex.reply(status, body, extra)
    this.finish(ex, this.metrics.stats(route), status, undefined)
    if (ex.requestDone || ex.closeAfter) ex.conn.done(ex)
  }

  private finish(req: Exchange, stats: ServiceStats, status: number, upstream: Target | undefined): void {
    const ms = performance.now() - req.started
    stats.request(status, ms / 1000, upstream?.id)
    if (this.accessLog !== undefined) {
      this.accessLog.write({
        remote: req.conn.remoteAddress,
        method: req.method,
        target: req.url,
        protocol: req.minor === 0 ? 'HTTP/1.0' : 'HTTP/1.1',
        status,
        bytes: req.bytes,
        ms,
        service: stats.service,
        upstream: upstream?.hostPort,
        upstreamMs: upstream === undefined || req.sentAt === 0 ? undefined : performance.now() - req.sentAt,
        ...refererAndAgent(req.rawHeaders),
      })
    }
  }
}

const CONNECT_CODES = new Set([
  'EADDRNOTAVAIL',
  'EAI_AGAIN',
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
])

/** A reset on a reused kept-alive connection, before anything of the answer came: safe to send again, once. */
function canResend(ex: Exchange, kind: UpstreamErrorKind, left: boolean): boolean {
  return kind === 'reset' && !left && !ex.resent && !ex.responseStarted && !ex.hasBody && IDEMPOTENT.has(ex.method)
}

/** The failure is one another instance may not share, and the request can be sent again (the budget aside). */
function mayRetry(ex: Exchange, kind: UpstreamErrorKind, left: boolean, code: string | undefined): boolean {
  return (
    !ex.responseStarted &&
    ex.retries < MAX_RETRIES &&
    !ex.hasBody &&
    (kind === 'connect' || kind === 'reset' || left || code === 'ECONNECTTIMEOUT') &&
    IDEMPOTENT.has(ex.method)
  )
}

/** How an upstream attempt failed, for metrics and for deciding a retry. */
export function errorKind(error: Error): UpstreamErrorKind {
  const code = (error as NodeJS.ErrnoException).code ?? ''
  if (CONNECT_CODES.has(code)) return 'connect'
  if (code === 'ECONNECTTIMEOUT' || code === 'ERESPONSETIMEOUT') return 'timeout'
  if (code === 'EUPSTREAMCLOSED' || code === 'ECONNRESET' || code === 'EPIPE') return 'reset'
  return 'other'
}
