import {
  type ClientRequest,
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http'
import type {Socket} from 'node:net'
import type {Duplex} from 'node:stream'
import {performance} from 'node:perf_hooks'

import {listenAt} from '../metrics/server.js'
import {hashKeyOf, type HashKey} from './hash-key.js'
import {downstreamHeaders, schemeOf, upstreamHeaders} from './headers.js'
import {DEFAULT_RETRY_BUDGET, RetryBudget} from './health.js'
import {ProxyMetrics} from './metrics.js'
import {type RouteMatch, RouteTable, type ServiceRoute, type Upstream} from './routes.js'
import {requestRefusal, responseFraming} from './framing.js'
import {
  errorKind,
  IDEMPOTENT,
  MAX_RETRIES,
  PROXY_DEFAULTS,
  PROXY_LIMITS,
  type ProxyLimits,
  type ProxyOptions,
} from './server.js'
import {
  AgentPool,
  connectDeadline,
  failureAnswer,
  fieldsOf,
  headerObject,
  pairsOf,
  problem,
  rawReply,
  writeJson,
} from './node-http-support.js'
import {type Refusal, resolveTarget} from './resolve-target.js'
import {type ClientError, ClientErrors} from './node-http-client-errors.js'
import {tunnelUpgrade} from './node-http-tunnel.js'

type Route = ServiceRoute<AgentPool>
type Target = Upstream<AgentPool>

/** One forwarded request, from routing to its settlement. */
interface Forward {
  req: IncomingMessage
  res: ServerResponse
  route: Route
  upstream: Target
  key: string | undefined
  path: string
  headers: string[]
  hasBody: boolean
  started: number
  up?: ClientRequest
  /** Retries on other instances so far, and the instances tried. */
  retries: number
  tried?: Set<Target>
  resent: boolean
  settled: boolean
  /** Response body bytes sent to the client. */
  bytes: number
  /** When the request last went upstream (0: not noted, the access log is off). */
  sentAt: number
}

/**
 * The gateway on public APIs only: a node:http server, and an http.Agent of keep-alive connections per upstream
 * instance. Slower than the llhttp engine (node builds every header object twice), used when Node's internals do
 * not behave as that engine expects, or when SVC_PROXY_ENGINE=node-http asks for it.
 */
export class NodeHttpProxy {
  readonly table: RouteTable<AgentPool>
  readonly metrics: ProxyMetrics
  readonly server: Server
  readonly limits: ProxyLimits
  draining = false
  private inflight = 0
  private readonly tunnels = new Set<Duplex>()
  private readonly budget: RetryBudget
  private readonly budgetTimer: NodeJS.Timeout
  private readonly hashKey: HashKey | undefined
  private readonly hostRouting: boolean
  private idle: (() => void) | undefined
  private readonly clientErrors = new ClientErrors()

  constructor(private readonly opts: ProxyOptions) {
    this.hashKey = opts.strategy === 'hash' ? (opts.hashKey ?? {kind: 'ip'}) : undefined
    this.hostRouting = opts.hostRouting ?? false
    this.budget = new RetryBudget(opts.retryBudget ?? DEFAULT_RETRY_BUDGET)
    this.budgetTimer = setInterval(() => this.budget.tick(), 1000)
    this.budgetTimer.unref()
    this.limits = {...PROXY_LIMITS, ...opts.limits}
    const max = opts.maxConnectionsPerUpstream ?? PROXY_DEFAULTS.maxConnectionsPerUpstream
    this.table = new RouteTable<AgentPool>({
      strategy: opts.strategy,
      routes: opts.routes,
      hostRouting: opts.hostRouting,
      health: opts.health,
      createPool: () => new AgentPool(max),
      onEject: (route, upstream, ms) => {
        this.metrics.ejections.inc({service: route.name, instance: upstream.id})
        opts.log?.(`ejected ${route.name} ${upstream.id} (${upstream.hostPort}) for ${ms} ms after repeated failures`)
      },
    })
    this.metrics = new ProxyMetrics(this.table)
    const {headersTimeoutMs, idleTimeoutMs, maxHeaderBytes} = this.limits
    this.server = createServer({
      maxHeaderSize: maxHeaderBytes,
      headersTimeout: headersTimeoutMs,
      requestTimeout: 0,
      keepAliveTimeout: idleTimeoutMs,
      // HTTP/1.0 clients may send no Host; the upstream gets one either way
      requireHostHeader: false,
      connectionsCheckingInterval: Math.max(20, Math.min(1000, Math.floor(headersTimeoutMs / 4))),
    })
    this.server.on('request', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res))
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head))
    this.server.on('clientError', (error: ClientError, socket: Duplex) => this.clientErrors.answer(error, socket))
    this.server.on('connect', (_req: IncomingMessage, socket: Duplex) =>
      rawReply(socket, 405, {error: 'CONNECT is refused: svc proxy forwards only to registered services'}),
    )
  }

  async listen(): Promise<string> {
    return listenAt(this.server, this.opts.host, this.opts.port, 'listen', '--listen')
  }

  get active(): number {
    return this.inflight + this.tunnels.size
  }

  /** As the llhttp engine's: stop accepting, let requests finish up to the deadline, then close everything. */
  async drain(timeoutMs: number): Promise<number> {
    this.draining = true
    clearInterval(this.budgetTimer)
    const closed = new Promise<void>((resolve) => {
      if (this.server.listening) this.server.close(() => resolve())
      else resolve()
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

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now()
    const remote = req.socket.remoteAddress ?? ''
    const trusted = this.opts.trustedProxy?.(remote) ?? false
    const head = upstreamHeaders(req.rawHeaders, remote, false, trusted, schemeOf(req.socket))
    this.clientErrors.track(req, res)
    // as the llhttp engine: what node's parser lets through and the framing rules refuse (codings, Host, version)
    const refusal = requestRefusal(req.httpVersionMajor, req.httpVersionMinor, head, false)
    if (refusal !== undefined) {
      this.reply(req, res, refusal.status, {error: refusal.error}, undefined, started, true)
      return
    }

    const url = req.url ?? ''
    const found = this.resolve(url, head.host)
    if ('status' in found) {
      this.reply(req, res, found.status, {error: found.error}, undefined, started, found.close)
      return
    }

    const {route} = found
    if (route === undefined) {
      const error = `unknown service "${found.service}"`
      this.reply(req, res, 404, {error, service: found.service}, undefined, started)
      return
    }

    const key = this.hashKey === undefined ? undefined : hashKeyOf(this.hashKey, req.rawHeaders, remote)
    const upstream = route.balancer.pick(key)
    if (upstream === undefined) {
      const body = {
        error: `no healthy instance of "${route.name}"`,
        service: route.name,
        instances: route.upstreams.size,
      }
      this.reply(req, res, 503, body, route, started)
      return
    }

    const headers = fieldsOf(head.block)
    if (head.host === undefined) headers.push('host', upstream.hostPort)
    if (head.hasBody) {
      // silence in the middle of a body: 408, as the llhttp engine's body timeout
      req.setTimeout(this.limits.bodyTimeoutMs, () => {
        if (req.complete) return
        if (!res.headersSent) res.writeHead(408, {connection: 'close', 'content-length': 0}).end()
        req.socket.destroy()
      })
      req.once('end', () => req.setTimeout(0))
    }

    const fwd: Forward = {
      req,
      res,
      route,
      upstream,
      key,
      path: found.path,
      headers,
      hasBody: head.hasBody,
      started,
      retries: 0,
      resent: false,
      settled: false,
      bytes: 0,
      sentAt: 0,
    }
    this.inflight++
    this.budget.request()
    this.clientErrors.track(req, res, (status) => this.cut(fwd, status))
    res.once('close', () => {
      // the client left before its response ended
      if (fwd.settled) return
      fwd.up?.destroy()
      this.settle(fwd, 499)
    })
    this.send(fwd, upstream)
  }

  /** Sends the request to `upstream` (counted in its requests in flight until it answers or fails). */
  private send(fwd: Forward, upstream: Target): void {
    fwd.upstream = upstream
    if (this.opts.accessLog !== undefined) fwd.sentAt = performance.now()
    upstream.inflight++
    upstream.pool.active++
    const {req, res} = fwd
    const {address, port} = upstream.instance
    const up = httpRequest({
      host: address,
      port,
      method: req.method,
      path: fwd.path,
      headers: fwd.headers,
      agent: upstream.pool.agent,
      setHost: false,
    })
    fwd.up = up
    let finished = false
    const release = (): void => {
      if (finished) return
      finished = true
      upstream.inflight--
      upstream.pool.done()
    }

    connectDeadline(up, this.opts.connectTimeoutMs)
    up.setTimeout(this.opts.timeoutMs, () =>
      up.destroy(problem(`no response for ${this.opts.timeoutMs} ms`, 'ERESPONSETIMEOUT')),
    )
    up.on('information', (info) => {
      if (fwd.settled || req.httpVersionMinor === 0) return
      if (info.statusCode === 102) res.writeProcessing()
      else if (info.statusCode === 103) res.writeEarlyHints(headerObject(downstreamHeaders(info.rawHeaders).block))
    })
    up.on('response', (ures: IncomingMessage) => {
      if (fwd.settled) {
        ures.resume()
        return
      }

      const status = ures.statusCode ?? 502
      const down = downstreamHeaders(ures.rawHeaders)
      const framing = responseFraming(down, req.method === 'HEAD' || status === 204 || status === 304)
      if (framing.kind === 'bad') {
        // a coding other than chunked cannot be passed on once node has decoded the chunked layer: 502
        ures.on('error', () => {})
        up.destroy()
        release()
        this.failed(fwd, problem(framing.error, 'EUPSTREAMPROTO'), false)
        return
      }

      const fields = fieldsOf(down.block)
      if (this.draining) fields.push('connection', 'close')
      res.writeHead(status, ures.statusMessage, fields)
      ures.on('data', (chunk: Buffer) => {
        fwd.bytes += chunk.length
        if (!res.write(chunk)) ures.pause()
      })
      res.on('drain', () => ures.resume())
      ures.once('end', () => {
        if (ures.rawTrailers.length > 0) res.addTrailers(pairsOf(downstreamHeaders(ures.rawTrailers).block))
        res.end()
        release()
        fwd.route.outcome(upstream, status >= 500)
        this.settle(fwd, status)
      })
      ures.once('close', () => {
        if (ures.complete) return
        // the upstream went away in the middle of its body: the client's response is cut too
        release()
        fwd.route.outcome(upstream, true)
        res.destroy()
        this.settle(fwd, status)
      })
    })
    up.on('error', (error: Error) => {
      release()
      if (!fwd.settled) this.failed(fwd, error, up.reusedSocket)
    })
    if (!fwd.hasBody) {
      up.end()
      return
    }

    req.on('data', (chunk: Buffer) => {
      if (!up.write(chunk)) req.pause()
    })
    up.on('drain', () => req.resume())
    // a chunked body's trailer fields are dropped, as the llhttp engine and nginx do: none reach the upstream
    req.once('end', () => up.end())
  }

  /** As the llhttp engine's: resend or retry elsewhere when safe, else 502/504 (or cut a started response). */
  private failed(fwd: Forward, error: Error, reused: boolean): void {
    const {route, upstream, req, res} = fwd
    const kind = errorKind(error)
    const idempotent = IDEMPOTENT.has(req.method ?? '')
    // the instance left the table (its pool is closing): not overload, so retried outside the budget
    const left = upstream.pool.closed
    if (reused && kind === 'reset' && !left && !fwd.resent && !res.headersSent && !fwd.hasBody && idempotent) {
      fwd.resent = true
      this.send(fwd, upstream)
      return
    }

    this.metrics.upstreamErrors.inc({service: route.name, instance: upstream.id, kind})
    route.outcome(upstream, true)
    const retriable =
      kind === 'connect' || kind === 'reset' || left || (error as NodeJS.ErrnoException).code === 'ECONNECTTIMEOUT'
    if (retriable && idempotent && this.retryElsewhere(fwd, left)) return
    if (res.headersSent) {
      res.destroy()
      this.settle(fwd, res.statusCode)
      return
    }

    const {status, error: message} = failureAnswer(error)
    fwd.bytes = writeJson(res, status, {error: message, service: route.name, instance: upstream.id}, this.draining)
    this.settle(fwd, status)
  }

  /** As the llhttp engine: up to MAX_RETRIES, each on an instance not tried yet; false when none is sent. */
  private retryElsewhere(fwd: Forward, left: boolean): boolean {
    if (fwd.res.headersSent || fwd.hasBody || fwd.retries >= MAX_RETRIES) return false
    if (!left && !this.budget.tryRetry()) return false
    fwd.tried ??= new Set()
    fwd.tried.add(fwd.upstream)
    const other = fwd.route.balancer.pickUntried(fwd.tried, fwd.key)
    if (other === undefined) return false
    fwd.retries++
    this.metrics.retries.inc({service: fwd.route.name})
    this.send(fwd, other)
    return true
  }

  /** node's parser failed in the request's body: it never completes upstream (its connection there is dropped). */
  private cut(fwd: Forward, status: number): void {
    if (fwd.settled) return
    this.settle(fwd, status)
    fwd.up?.destroy()
  }

  private settle(fwd: Forward, status: number): void {
    if (fwd.settled) return
    fwd.settled = true
    this.inflight--
    this.finish(fwd.req, fwd.route, status, fwd.upstream, fwd.started, fwd)
    this.idle?.()
  }

  private reply(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    body: Record<string, unknown>,
    route: Route | undefined,
    started: number,
    close = false,
  ): void {
    if (close || this.draining) this.clientErrors.closes(res)
    const bytes = writeJson(res, status, body, close || this.draining)
    // a client waiting for 100 Continue may never send the body it announced
    if (!req.complete) req.resume()
    this.finish(req, route, status, undefined, started, {bytes, sentAt: 0})
  }

  /** As the llhttp engine's: a WebSocket handshake spliced as raw sockets to a new upstream connection. */
  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const started = performance.now()
    socket.on('error', () => socket.destroy())
    const remote = req.socket.remoteAddress ?? ''
    const trusted = this.opts.trustedProxy?.(remote) ?? false
    const fields = upstreamHeaders(req.rawHeaders, remote, true, trusted, schemeOf(req.socket))
    // as the llhttp engine: the framing checks first (an Upgrade that carries a body is refused, 400)
    const refusal = requestRefusal(req.httpVersionMajor, req.httpVersionMinor, fields, true)
    if (refusal !== undefined) {
      rawReply(socket, refusal.status, {error: refusal.error})
      this.finish(req, undefined, refusal.status, undefined, started)
      return
    }

    const found = this.resolve(req.url ?? '', req.headers.host)
    const match = 'status' in found ? undefined : found
    const route = match?.route
    if (this.draining || match === undefined || route === undefined) {
      const status = this.draining ? 503 : 404
      const error = this.draining
        ? 'svc proxy is shutting down'
        : match
          ? `unknown service "${match.service}"`
          : 'no service named in the path'
      rawReply(socket, status, {error})
      this.finish(req, route, status, undefined, started)
      return
    }

    const upstream = route.balancer.pick(
      this.hashKey === undefined ? undefined : hashKeyOf(this.hashKey, req.rawHeaders, remote),
    )
    if (upstream === undefined) {
      rawReply(socket, 503, {error: `no healthy instance of "${route.name}"`, service: route.name})
      this.finish(req, route, 503, undefined, started)
      return
    }

    tunnelUpgrade(req, socket as Socket, head, route, upstream, {
      path: match.path,
      headers: fieldsOf(fields.block),
      connectTimeoutMs: this.opts.connectTimeoutMs,
      timeoutMs: this.opts.timeoutMs,
      metrics: this.metrics,
      tunnels: this.tunnels,
      end: (status) => {
        this.finish(req, route, status, upstream, started)
        this.idle?.()
      },
    })
  }

  private resolve(url: string, host: string | undefined): RouteMatch<AgentPool> | Refusal {
    return resolveTarget(this.table, url, host, {maxUrlBytes: this.limits.maxUrlBytes, hostRouting: this.hostRouting})
  }

  private finish(
    req: IncomingMessage,
    route: Route | undefined,
    status: number,
    upstream: Target | undefined,
    started: number,
    sent?: {bytes: number; sentAt: number},
  ): void {
    const stats = this.metrics.stats(route)
    const now = performance.now()
    const ms = now - started
    stats.request(status, ms / 1000, upstream?.id)
    this.opts.accessLog?.write({
      remote: req.socket.remoteAddress ?? '',
      method: req.method ?? '',
      target: req.url ?? '',
      protocol: `HTTP/${req.httpVersion}`,
      status,
      bytes: sent?.bytes ?? 0,
      ms,
      service: stats.service,
      upstream: upstream?.hostPort,
      upstreamMs: upstream === undefined || !sent?.sentAt ? undefined : now - sent.sentAt,
      referer: req.headers.referer,
      userAgent: req.headers['user-agent'],
    })
  }
}

/** The header lines of a block as [name, value] pairs (trailers). */
