import {
  constants,
  createServer,
  type Http2Server,
  type Http2Session,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2'
import type {Socket} from 'node:net'
import {performance} from 'node:perf_hooks'
import type {TLSSocket} from 'node:tls'

import {hashKeyOf, type HashKey} from '../hash-key.js'
import {DEFAULT_RETRY_BUDGET, RetryBudget} from '../health.js'
import type {ProxyMetrics} from '../metrics.js'
import {PROXY_DEFAULTS, PROXY_LIMITS, type ProxyOptions} from '../options.js'
import {resolveTarget} from '../resolve-target.js'
import type {RouteTable, ServiceRoute, Upstream} from '../routes.js'
import {errorKind, IDEMPOTENT, MAX_RETRIES} from '../server.js'
import {ConnectionPool} from '../upstream-pool.js'
import type {H2Completion, H2Exchange} from './exchange.js'
import {type ForwardFields, forwardFields} from './fields.js'
import {type AttemptOutcome, forwardH1} from './forward-h1.js'
import {forwardH2} from './forward-h2.js'
import {forwardPooled} from './forward-pooled.js'
import {GRPC, grpcStatusFor, grpcTrailersOnly, isGrpc, parseGrpcTimeout} from './grpc.js'
import {upstreamProtocol, UpstreamSessions} from './sessions.js'

// gRPC channels stay open between calls: an HTTP/2 connection with no stream is closed after a minute
const H2_IDLE_MS = 60_000

export interface H2GatewayOptions extends ProxyOptions {
  /** Called once per HTTP/2 request as it ends: the access log's hook. */
  onComplete?: (record: H2Completion) => void
}

/**
 * HTTP/2 to clients (over TLS after ALPN h2, or h2c with prior knowledge), routed through the HTTP/1 engine's route
 * table, balancer and passive health: to HTTP/1.1 upstreams by default, to h2c upstreams (meta protocol=h2c or
 * grpc) over one pooled session each. Bodies stream both ways; trailers (grpc-status) pass through.
 */
export class H2Gateway {
  readonly server: Http2Server
  private readonly sessions = new Set<ServerHttp2Session>()
  /** Streams open on each client session, so an idle one is told apart from one with a quiet gRPC stream. */
  private readonly streams = new WeakMap<Http2Session, number>()
  private readonly upstreams: UpstreamSessions
  private readonly budget: RetryBudget
  private readonly budgetTimer: NodeJS.Timeout
  private readonly hashKey: HashKey | undefined
  private readonly maxUrlBytes: number
  private inflight = 0
  private idle: (() => void) | undefined

  constructor(
    private readonly table: RouteTable,
    private readonly metrics: ProxyMetrics,
    readonly opts: H2GatewayOptions,
  ) {
    this.hashKey = opts.strategy === 'hash' ? (opts.hashKey ?? {kind: 'ip'}) : undefined
    this.maxUrlBytes = opts.limits?.maxUrlBytes ?? PROXY_LIMITS.maxUrlBytes
    this.budget = new RetryBudget(opts.retryBudget ?? DEFAULT_RETRY_BUDGET)
    this.budgetTimer = setInterval(() => this.budget.tick(), 1000)
    this.budgetTimer.unref()
    this.upstreams = new UpstreamSessions(table, {
      connectTimeoutMs: opts.connectTimeoutMs,
      maxConnectionsPerUpstream: opts.maxConnectionsPerUpstream ?? PROXY_DEFAULTS.maxConnectionsPerUpstream,
    })
    this.server = createServer({maxHeaderListPairs: 256, maxSessionMemory: 64})
    this.server.on('session', (session: ServerHttp2Session) => {
      this.sessions.add(session)
      session.setTimeout(H2_IDLE_MS, () => {
        // an idle HTTP/2 connection (no stream open) is closed politely
        if (this.openStreams(session) === 0) session.close()
      })
      session.once('close', () => this.sessions.delete(session))
      session.on('error', () => {})
    })
    this.server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, raw: string[]) =>
      this.onStream(stream, headers, raw),
    )
    this.server.on('sessionError', () => {})
  }

  /** Takes a connection whose first bytes are HTTP/2 (a TLS socket after ALPN h2, or an h2c socket). */
  accept(socket: Socket): void {
    this.server.emit('connection', socket)
  }

  /** HTTP/2 streams being proxied. */
  get active(): number {
    return this.inflight
  }

  /** GOAWAY to every client, streams in flight finish up to the deadline; resolves with the streams cut. */
  async drain(timeoutMs: number): Promise<number> {
    clearInterval(this.budgetTimer)
    for (const session of this.sessions) session.close()
    if (this.inflight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs)
        this.idle = () => {
          if (this.inflight > 0) return
          clearTimeout(timer)
          resolve()
        }
      })
    }

    const cut = this.inflight
    this.idle = undefined
    for (const session of this.sessions) session.destroy()
    this.upstreams.close()
    return cut
  }

  private openStreams(session: Http2Session): number {
    return this.streams.get(session) ?? 0
  }

  /** Counts the stream on its session (for the idle close) and starts its record. */
  private open(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): {record: H2Completion} {
    stream.on('error', () => {})
    const {session} = stream
    if (session !== undefined) {
      this.streams.set(session, this.openStreams(session) + 1)
      stream.once('close', () => this.streams.set(session, this.openStreams(session) - 1))
    }

    const socket = session?.socket as (Partial<TLSSocket> & Socket) | undefined
    const record: H2Completion = {
      protocol: socket?.encrypted === true ? 'h2' : 'h2c',
      remoteAddress: socket?.remoteAddress ?? '',
      method: String(headers[':method'] ?? ''),
      target: String(headers[':path'] ?? ''),
      authority: headers[':authority'] ?? headers.host,
      status: 0,
      bytes: 0,
      durationMs: 0,
      service: undefined,
      time: Date.now(),
    }
    return {record}
  }

  private onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, raw: string[]): void {
    const {record} = this.open(stream, headers)
    const {method, target, authority, remoteAddress: remote} = record
    const grpc = isGrpc(headers)
    const started = performance.now()
    if (method === 'CONNECT') {
      const error = 'CONNECT is refused: svc proxy forwards only to registered services'
      this.answer(stream, record, started, grpc, undefined, 405, error)
      return
    }

    const found = resolveTarget(this.table, target, authority, {
      maxUrlBytes: this.maxUrlBytes,
      hostRouting: this.opts.hostRouting ?? false,
    })
    if ('status' in found) {
      this.answer(stream, record, started, grpc, undefined, found.status, found.error)
      return
    }

    record.service = found.service
    const {route} = found
    if (route === undefined) {
      this.answer(stream, record, started, grpc, undefined, 404, `unknown service "${found.service}"`)
      return
    }

    const key = this.hashKey === undefined ? undefined : hashKeyOf(this.hashKey, raw, remote)
    const upstream = route.balancer.pick(key)
    if (upstream === undefined) {
      this.answer(stream, record, started, grpc, route, 503, `no healthy instance of "${route.name}"`)
      return
    }

    const ex: H2Exchange = {
      stream,
      record,
      grpc,
      route,
      upstream,
      tried: new Set(),
      retries: 0,
      hasBody: !stream.endAfterHeaders,
      started,
      sentAt: 0,
      settled: false,
    }
    this.inflight++
    this.budget.request()
    const deadline = grpc ? parseGrpcTimeout(headers['grpc-timeout']) : undefined
    if (deadline !== undefined) {
      ex.deadline = setTimeout(() => this.expire(ex), deadline)
      ex.deadline.unref()
    }

    stream.once('close', () => {
      // the client reset the stream or went away before the response ended
      if (ex.settled) return
      ex.cancel?.()
      this.settle(ex, 499)
    })
    // gRPC keeps the whole path: its server dispatches on /package.Service/Method
    const path = grpc ? target : found.path
    const trusted = this.opts.trustedProxy?.(remote) ?? false
    const fields = forwardFields(raw, {
      method,
      path,
      authority,
      clientIp: remote,
      trusted,
      tls: record.protocol === 'h2',
    })
    this.send(ex, upstream, key, fields, path)
  }

  private send(ex: H2Exchange, upstream: Upstream, key: string | undefined, fields: ForwardFields, path: string): void {
    ex.upstream = upstream
    ex.record.upstream = upstream.hostPort
    upstream.inflight++
    this.upstreams.acquire(ex.route.name, upstream)
    ex.sentAt = performance.now()
    const done = (outcome: AttemptOutcome): void => {
      upstream.inflight--
      this.upstreams.release(upstream)
      // a client that left, or a deadline that passed, says nothing about the instance
      if (ex.settled) return
      if (outcome.error !== undefined) {
        this.failed(ex, outcome.error, outcome.sentBody, key, fields, path)
        return
      }

      ex.route.outcome(upstream, outcome.failed)
      this.settle(ex, outcome.status)
    }

    const {timeoutMs, connectTimeoutMs} = this.opts
    const opts = {path, timeoutMs, connectTimeoutMs}
    const {pool} = upstream
    // HTTP/1.1 upstreams over the llhttp engine's own pool; the node:http engine's (no such pool) through node:http
    if (upstreamProtocol(upstream) === 'h2c') forwardH2(ex, this.upstreams, fields, opts, done)
    else if (pool instanceof ConnectionPool) forwardPooled(ex, pool, fields, opts, done)
    else forwardH1(ex, this.upstreams, fields, opts, done)
  }

  /** An attempt failed before its response: another instance when that is safe, else 502/504 or gRPC 14/4. */
  private failed(
    ex: H2Exchange,
    error: Error,
    sentBody: boolean,
    key: string | undefined,
    fields: ForwardFields,
    path: string,
  ): void {
    const {route, upstream, stream} = ex
    const kind = errorKind(error)
    const code = (error as NodeJS.ErrnoException).code
    this.metrics.upstreamErrors.inc({service: route.name, instance: upstream.id, kind})
    route.outcome(upstream, true)
    const connectFailed = kind === 'connect' || code === 'ECONNECTTIMEOUT'
    const safe = connectFailed ? !sentBody : !ex.hasBody && IDEMPOTENT.has(ex.record.method) && kind === 'reset'
    if (!stream.headersSent && safe && ex.retries < MAX_RETRIES && this.budget.tryRetry()) {
      ex.tried.add(upstream)
      const other = route.balancer.pickUntried(ex.tried, key)
      if (other !== undefined) {
        ex.retries++
        this.metrics.retries.inc({service: route.name})
        this.send(ex, other, key, fields, path)
        return
      }
    }

    if (stream.headersSent) {
      stream.close(constants.NGHTTP2_INTERNAL_ERROR)
      this.settle(ex, ex.record.status)
      return
    }

    const status = kind === 'timeout' ? 504 : 502
    const message = `${status === 504 ? 'upstream timed out' : 'upstream failed'}: ${error.message}`
    this.write(stream, ex.grpc, status, message, {service: route.name, instance: upstream.id})
    this.settle(ex, status)
  }

  /** The call's grpc-timeout passed: the upstream stream is cancelled and the client gets DEADLINE_EXCEEDED. */
  private expire(ex: H2Exchange): void {
    if (ex.settled) return
    ex.cancel?.()
    ex.record.grpcStatus = String(GRPC.DEADLINE_EXCEEDED)
    if (ex.stream.headersSent) ex.stream.close(constants.NGHTTP2_CANCEL)
    else grpcTrailersOnly(ex.stream, GRPC.DEADLINE_EXCEEDED, 'deadline exceeded at svc proxy')
    this.settle(ex, ex.stream.headersSent ? ex.record.status || 200 : 200)
  }

  private settle(ex: H2Exchange, status: number): void {
    if (ex.settled) return
    ex.settled = true
    if (ex.deadline !== undefined) clearTimeout(ex.deadline)
    this.inflight--
    this.complete(ex.record, ex.started, ex.route, status)
    this.idle?.()
  }

  /** An answer of the gateway's own (refusal, 404, 503), never forwarded. */
  private answer(
    stream: ServerHttp2Stream,
    record: H2Completion,
    started: number,
    grpc: boolean,
    route: ServiceRoute | undefined,
    status: number,
    error: string,
  ): void {
    const bytes = this.write(stream, grpc, status, error, record.service === undefined ? {} : {service: record.service})
    record.bytes = bytes
    if (grpc) record.grpcStatus = String(grpcStatusFor(status))
    this.complete(record, started, route, grpc ? 200 : status)
  }

  /** A JSON error body, or for a gRPC call a trailers-only response with the matching grpc-status; the bytes sent. */
  private write(
    stream: ServerHttp2Stream,
    grpc: boolean,
    status: number,
    error: string,
    extra: Record<string, unknown>,
  ): number {
    if (stream.destroyed || stream.headersSent) return 0
    if (grpc) {
      grpcTrailersOnly(stream, grpcStatusFor(status), error)
      return 0
    }

    const body = JSON.stringify({error, ...extra}) + '\n'
    const fields: Record<string, string | number> = {':status': status, 'content-type': 'application/json'}
    if (status === 503) fields['retry-after'] = '1'
    stream.respond(fields)
    stream.end(body)
    return Buffer.byteLength(body)
  }

  private complete(record: H2Completion, started: number, route: ServiceRoute | undefined, status: number): void {
    record.status = status
    record.durationMs = performance.now() - started
    this.metrics.stats(route).request(status, record.durationMs / 1000)
    this.opts.onComplete?.(record)
  }
}
