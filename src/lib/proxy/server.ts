import {createServer, type IncomingMessage, type Server, type ServerResponse} from 'node:http'
import {connect, type AddressInfo, type Socket} from 'node:net'
import type {Duplex} from 'node:stream'
import {performance} from 'node:perf_hooks'

import {type Dispatcher, Pool} from 'undici'

import type {BalanceStrategy} from '../balancer/strategies.js'
import {listenError} from '../metrics/server.js'
import {formatHosts} from '../registry/spec.js'
import {hashKeyOf, type HashKey} from './hash-key.js'
import {DEFAULT_RETRY_BUDGET, type PassiveHealthOptions, RetryBudget, type RetryBudgetOptions} from './health.js'
import {downstreamHeaders, upstreamHeaders} from './headers.js'
import {ProxyMetrics, type ServiceStats, type UpstreamErrorKind} from './metrics.js'
import {type RouteSpec, RouteTable, type ServiceRoute, type Upstream} from './routes.js'

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
  /** Called with one line per request when set (the access log). */
  accessLog?: (line: string) => void
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

type UpstreamPool = Pool
type Route = ServiceRoute<UpstreamPool>
type Target = Upstream<UpstreamPool>

const IDEMPOTENT = new Set(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'PUT', 'TRACE'])

/** The client went away before the response ended; the upstream request is aborted with this. */
class ClientGoneError extends Error {
  override name = 'ClientGoneError'
}

/**
 * One proxied request, as undici's dispatch handler: response headers, data and end go straight to the client's
 * response, with backpressure both ways. A class, not closures, so each request allocates one object.
 */
class Forward implements Dispatcher.DispatchHandler {
  abortUpstream: ((error?: Error) => void) | undefined = undefined
  resumeUpstream: (() => void) | undefined = undefined
  status = 0
  contentLength = -1
  /** Body bytes written to the client so far. */
  written = 0
  done = false
  retried = false

  constructor(
    readonly proxy: ProxyServer,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly route: Route,
    public upstream: Target,
    readonly options: Dispatcher.DispatchOptions,
    readonly key: string | undefined,
    readonly started: number,
  ) {}

  readonly onClientClose = (): void => {
    if (this.done) return
    this.done = true
    // undici reports the abort through onError, which releases the upstream's slot
    this.abortUpstream?.(new ClientGoneError('the client closed the connection'))
    this.proxy.settle(this, 499)
  }

  onConnect(abort: (error?: Error) => void): void {
    this.abortUpstream = abort
    if (this.done) abort(new ClientGoneError('the client closed the connection'))
  }

  onHeaders(statusCode: number, headers: Buffer[], resume: () => void): boolean {
    if (statusCode < 200 || this.done) return true
    this.status = statusCode
    this.resumeUpstream = resume
    const {res} = this
    if (this.proxy.draining) res.shouldKeepAlive = false
    res.writeHead(statusCode, downstreamHeaders(headers, this))
    return true
  }

  onData(chunk: Buffer): boolean {
    if (this.done) return true
    const {res} = this
    this.written += chunk.length
    // the whole body in one chunk (the usual small response): one write with the head, no separate end
    if (this.written === this.contentLength) {
      res.end(chunk)
      return true
    }

    if (res.write(chunk)) return true
    res.once('drain', this.resumeUpstream!)
    return false
  }

  onComplete(): void {
    if (this.done) return
    this.done = true
    if (this.written !== this.contentLength || this.written === 0) this.res.end()
    const {upstream} = this
    upstream.inflight--
    this.route.outcome(upstream, this.status >= 500)
    this.proxy.settle(this, this.status)
  }

  onError(error: Error): void {
    this.proxy.failed(this, error)
  }
}

/**
 * The gateway: a node:http server whose requests go, through the in-memory route table, to undici keep-alive pools
 * (one per upstream instance). Upgrades (WebSocket) are spliced as raw sockets. Nothing on the request path talks
 * to the registry.
 */
export class ProxyServer {
  readonly table: RouteTable<UpstreamPool>
  readonly metrics: ProxyMetrics
  readonly server: Server
  draining = false
  private inflight = 0
  private readonly tunnels = new Set<Duplex>()
  private readonly budget: RetryBudget
  private readonly budgetTimer: NodeJS.Timeout
  private readonly hashKey: HashKey | undefined
  private readonly hostRouting: boolean
  private readonly accessLog: ((line: string) => void) | undefined
  private idle: (() => void) | undefined

  constructor(private readonly opts: ProxyOptions) {
    this.hashKey = opts.strategy === 'hash' ? (opts.hashKey ?? {kind: 'ip'}) : undefined
    this.hostRouting = opts.hostRouting ?? false
    this.accessLog = opts.accessLog
    this.budget = new RetryBudget(opts.retryBudget ?? DEFAULT_RETRY_BUDGET)
    this.budgetTimer = setInterval(() => this.budget.tick(), 1000)
    this.budgetTimer.unref()
    this.table = new RouteTable<UpstreamPool>({
      strategy: opts.strategy,
      routes: opts.routes,
      hostRouting: opts.hostRouting,
      health: opts.health,
      createPool: (origin) =>
        new Pool(origin, {
          connections: opts.maxConnectionsPerUpstream ?? PROXY_DEFAULTS.maxConnectionsPerUpstream,
          pipelining: 1,
          connectTimeout: opts.connectTimeoutMs,
          headersTimeout: opts.timeoutMs,
          bodyTimeout: opts.timeoutMs,
        }),
      onEject: (route, upstream, ms) => {
        this.metrics.ejections.inc({service: route.name, instance: upstream.id})
        opts.log?.(`ejected ${route.name} ${upstream.id} (${upstream.hostPort}) for ${ms} ms after repeated failures`)
      },
    })
    this.metrics = new ProxyMetrics(this.table)
    this.server = createServer({keepAliveTimeout: 5000}, (req, res) => this.handle(req, res))
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head))
    this.server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
      socket.on('error', () => {})
      rawReply(socket, 405, {error: 'CONNECT is refused: svc proxy forwards only to registered services'})
    })
    this.server.on('clientError', (_error, socket: Duplex) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
      else socket.destroy()
    })
  }

  /** Starts listening; resolves with the bound address (host:port). */
  async listen(): Promise<string> {
    const {server} = this
    const {host, port} = this.opts
    await new Promise<void>((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException): void =>
        reject(listenError(error, host, port, 'listen', '--listen'))
      server.once('error', onError)
      server.listen(port, host, () => {
        server.off('error', onError)
        resolve()
      })
    })
    const bound = server.address() as AddressInfo
    return formatHosts([{host: bound.address, port: bound.port}])
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
    const closed = new Promise<void>((resolve) => {
      this.server.close(() => resolve())
    })
    this.server.closeIdleConnections()
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
    this.server.closeAllConnections()
    await closed
    await this.table.close(cut > 0)
    return cut
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now()
    const url = req.url!
    if (this.draining) res.shouldKeepAlive = false
    if (url.codePointAt(0) !== 47) {
      this.reply(req, res, undefined, 400, started, {
        error: 'only origin-form request targets (/<service>/<path>) are served: svc proxy is not an open proxy',
      })
      return
    }

    const match = this.table.match(url, this.hostRouting ? req.headers.host : undefined)
    if (match === undefined) {
      this.reply(req, res, undefined, 404, started, {error: 'no service named in the path: use /<service>/<path>'})
      return
    }

    const {route} = match
    if (route === undefined) {
      this.reply(req, res, undefined, 404, started, {
        error: `unknown service "${match.service}"`,
        service: match.service,
      })
      return
    }

    const key = this.hashKey === undefined ? undefined : hashKeyOf(this.hashKey, req)
    const upstream = route.balancer.pick(key)
    if (upstream === undefined) {
      this.reply(req, res, route, 503, started, {
        error: `no healthy instance of "${route.name}"`,
        service: route.name,
        instances: route.upstreams.size,
      })
      return
    }

    const head = upstreamHeaders(req.rawHeaders, req.socket.remoteAddress ?? '')
    const options: Dispatcher.DispatchOptions = {
      path: match.path,
      method: req.method as Dispatcher.HttpMethod,
      headers: head.headers,
      body: head.hasBody ? req : null,
    }
    const forward = new Forward(this, req, res, route, upstream, options, key, started)
    this.inflight++
    this.budget.request()
    upstream.inflight++
    // 'close' comes once per response; on() skips the wrapper once() would allocate
    res.on('close', forward.onClientClose)
    upstream.pool.dispatch(options, forward)
  }

  /** An attempt failed: retry it elsewhere when that is safe, else answer 502/504 (or cut a started response). */
  failed(forward: Forward, error: Error): void {
    const {route, upstream} = forward
    upstream.inflight--
    if (error instanceof ClientGoneError) return
    const kind = errorKind(error)
    const poolClosed = kind === 'other' && isPoolClosed(error)
    if (!poolClosed) {
      this.metrics.upstreamErrors.inc({service: route.name, instance: upstream.id, kind})
      route.outcome(upstream, true)
    }

    if (forward.done) return
    const {res} = forward
    if (
      !res.headersSent &&
      !forward.retried &&
      forward.options.body === null &&
      (kind === 'connect' || kind === 'reset' || poolClosed || isConnectTimeout(error)) &&
      IDEMPOTENT.has(forward.options.method) &&
      this.budget.tryRetry()
    ) {
      const other = route.balancer.pickOther(upstream, forward.key)
      if (other !== undefined) {
        forward.retried = true
        forward.upstream = other
        forward.abortUpstream = undefined
        other.inflight++
        this.metrics.retries.inc({service: route.name})
        other.pool.dispatch(forward.options, forward)
        return
      }
    }

    forward.done = true
    if (res.headersSent) {
      res.destroy(error)
      this.settle(forward, forward.status)
      return
    }

    const status = kind === 'timeout' ? 504 : 502
    writeJson(res, status, {
      error: `${status === 504 ? 'upstream timed out' : 'upstream failed'}: ${error.message}`,
      service: route.name,
      instance: upstream.id,
    })
    this.settle(forward, status)
  }

  /** A request ended (answered, failed or abandoned by the client): count it, log it, release its slot. */
  settle(forward: Forward, status: number): void {
    this.inflight--
    this.finish(forward.req, this.metrics.stats(forward.route), status, forward.started, forward.upstream)
    if (this.idle !== undefined) this.idle()
  }

  /** Handles an Upgrade request (WebSocket) by splicing the client's socket to a new upstream connection. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy())
    const url = req.url!
    const started = performance.now()
    const match =
      url.codePointAt(0) === 47 ? this.table.match(url, this.hostRouting ? req.headers.host : undefined) : undefined
    const route = match?.route
    if (this.draining || match === undefined || route === undefined) {
      const status = this.draining ? 503 : 404
      rawReply(socket, status, {
        error: this.draining
          ? 'svc proxy is shutting down'
          : match
            ? `unknown service "${match.service}"`
            : 'no service named in the path',
      })
      this.finish(req, this.metrics.stats(route), status, started, undefined)
      return
    }

    const upstream = route.balancer.pick(this.hashKey === undefined ? undefined : hashKeyOf(this.hashKey, req))
    if (upstream === undefined) {
      rawReply(socket, 503, {error: `no healthy instance of "${route.name}"`, service: route.name})
      this.finish(req, this.metrics.stats(route), 503, started, undefined)
      return
    }

    const {headers} = upstreamHeaders(req.rawHeaders, req.socket.remoteAddress ?? '', true)
    let text = `${req.method} ${match.path} HTTP/1.1\r\n`
    for (let i = 0; i < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`
    text += '\r\n'
    const up: Socket = connect({host: upstream.instance.address, port: upstream.instance.port})
    up.setNoDelay(true)
    up.setTimeout(this.opts.connectTimeoutMs)
    this.tunnels.add(socket)
    upstream.inflight++
    let connected = false
    let status = 0
    const close = (): void => {
      if (!this.tunnels.delete(socket)) return
      upstream.inflight--
      up.destroy()
      socket.destroy()
      // a client that left before the upstream answered the connect is not counted as a request
      if (connected) this.finish(req, this.metrics.stats(route), status || 502, started, upstream)
      this.idle?.()
    }

    up.once('timeout', () => up.destroy(new Error(`connect timed out after ${this.opts.connectTimeoutMs} ms`)))
    up.once('connect', () => {
      connected = true
      up.setTimeout(0)
      route.outcome(upstream, false)
      up.write(text)
      if (head.length > 0) up.write(head)
      up.once('data', (chunk: Buffer) => {
        status = Number(chunk.toString('latin1', 9, 12)) || 0
      })
      up.pipe(socket)
      socket.pipe(up)
    })
    up.on('error', (error) => {
      if (!connected && this.tunnels.has(socket)) {
        this.tunnels.delete(socket)
        upstream.inflight--
        this.metrics.upstreamErrors.inc({service: route.name, instance: upstream.id, kind: errorKind(error)})
        route.outcome(upstream, true)
        rawReply(socket, 502, {error: `upstream failed: ${error.message}`, service: route.name, instance: upstream.id})
        this.finish(req, this.metrics.stats(route), 502, started, upstream)
        this.idle?.()
        return
      }

      close()
    })
    up.on('close', close)
    socket.on('close', close)
  }

  private reply(
    req: IncomingMessage,
    res: ServerResponse,
    route: Route | undefined,
    status: number,
    started: number,
    body: Record<string, unknown>,
  ): void {
    writeJson(res, status, body)
    this.finish(req, this.metrics.stats(route), status, started, undefined)
  }

  private finish(
    req: IncomingMessage,
    stats: ServiceStats,
    status: number,
    started: number,
    upstream: Target | undefined,
  ): void {
    const ms = performance.now() - started
    stats.request(status, ms / 1000)
    if (this.accessLog !== undefined) {
      this.accessLog(
        `${new Date().toISOString()} ${req.socket.remoteAddress ?? '-'} "${req.method} ${req.url} HTTP/${req.httpVersion}" ${status} ${ms.toFixed(1)}ms ${stats.service} ${upstream?.hostPort ?? '-'}`,
      )
    }
  }
}

function writeJson(res: ServerResponse, status: number, body: Record<string, unknown>): void {
  const text = JSON.stringify(body) + '\n'
  res.writeHead(status, {'content-type': 'application/json', 'content-length': Buffer.byteLength(text)})
  res.end(text)
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  404: 'Not Found',
  405: 'Method Not Allowed',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
}

/** A whole HTTP/1.1 response written to a raw socket (upgrade and CONNECT paths), then the socket is closed. */
function rawReply(socket: Duplex, status: number, body: Record<string, unknown>): void {
  const text = JSON.stringify(body) + '\n'
  socket.end(
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
  )
}

const CONNECT_CODES = new Set([
  'EADDRNOTAVAIL',
  'EAI_AGAIN',
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
])

/** How an upstream attempt failed, for metrics and for deciding a retry. */
export function errorKind(error: Error): UpstreamErrorKind {
  const code = (error as NodeJS.ErrnoException).code ?? ''
  if (CONNECT_CODES.has(code)) return 'connect'
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return 'timeout'
  }

  if (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'EPIPE') return 'reset'
  return 'other'
}

function isConnectTimeout(error: Error): boolean {
  return (error as NodeJS.ErrnoException).code === 'UND_ERR_CONNECT_TIMEOUT'
}

/** The instance's pool closed under the request (it left the table): not the instance's fault, safe to retry. */
function isPoolClosed(error: Error): boolean {
  const code = (error as NodeJS.ErrnoException).code
  return code === 'UND_ERR_CLOSED' || code === 'UND_ERR_DESTROYED'
}
