import {STATUS_CODES} from 'node:http'
import {type AddressInfo, connect, createServer, type Server, type Socket} from 'node:net'
import {performance} from 'node:perf_hooks'

import type {BalanceStrategy} from '../balancer/strategies.js'
import {listenError} from '../metrics/server.js'
import {formatHosts} from '../registry/spec.js'
import {hashKeyOf, type HashKey} from './hash-key.js'
import {downstreamHeaders, upstreamHeaders} from './headers.js'
import {DEFAULT_RETRY_BUDGET, type PassiveHealthOptions, RetryBudget, type RetryBudgetOptions} from './health.js'
import {
  consumeSocket,
  createParser,
  kOnBody,
  kOnExecute,
  kOnHeaders,
  kOnHeadersComplete,
  kOnMessageBegin,
  kOnMessageComplete,
  methods,
  type NativeParser,
  type ParseError,
  releaseSocket,
  setFlowing,
  touchSocket,
} from './http-parser.js'
import {ProxyMetrics, type ServiceStats, type UpstreamErrorKind} from './metrics.js'
import {type RouteMatch, type RouteSpec, RouteTable, type ServiceRoute, type Upstream} from './routes.js'
import {normalizeTarget} from './target.js'
import {ConnectionPool, DEFAULT_IDLE_MS, type PoolClient, type UpstreamConnection} from './upstream-pool.js'

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

type Route = ServiceRoute<ConnectionPool>
type Target = Upstream<ConnectionPool>

const IDEMPOTENT = new Set(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'PUT', 'TRACE'])

/** Why a request target is answered by the proxy itself; `close`: the connection ends after the answer. */
interface Refusal {
  status: number
  error: string
  close?: boolean
}

/** `HTTP/1.1 <code> <reason>\r\n` for every code node knows, built once. */
const STATUS_LINES: string[] = []
for (const [code, reason] of Object.entries(STATUS_CODES)) STATUS_LINES[Number(code)] = `HTTP/1.1 ${code} ${reason}\r\n`

const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n'
const BAD_REQUEST = 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n'
const TOO_LARGE = 'HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n'
const REQUEST_TIMEOUT = 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n'
const LAST_CHUNK = '0\r\n\r\n'

/** The end of a chunked body, with its trailer fields (hop-by-hop ones dropped) when there are any. */
function lastChunk(trailers: readonly string[] | undefined): string {
  if (trailers === undefined) return LAST_CHUNK
  return '0\r\n' + downstreamHeaders(trailers).block + '\r\n'
}

/** Request parser callbacks: `this` is the parser, its connection in `conn`. */
interface RequestParser extends NativeParser {
  conn: ClientConnection
}

function onRequestBegin(this: NativeParser): void {
  ;(this as RequestParser).conn.headStart = performance.now()
}

function onRequestHeaders(this: NativeParser, headers: string[], url: string): void {
  const conn = (this as RequestParser).conn
  for (const h of headers) conn.partialHeaders.push(h)
  conn.partialUrl += url
}

function onRequestHeadersComplete(
  this: NativeParser,
  _major: number,
  minor: number,
  headers: string[] | undefined,
  method: number | undefined,
  url: string | undefined,
  _status: number | undefined,
  _reason: string | undefined,
  upgrade: boolean,
  keepAlive: boolean,
): number {
  const conn = (this as RequestParser).conn
  conn.headStart = 0
  if (headers === undefined) {
    headers = conn.partialHeaders
    conn.partialHeaders = []
  } else if (conn.partialHeaders.length > 0) {
    headers = [...conn.partialHeaders, ...headers]
    conn.partialHeaders = []
  }

  if (!url) {
    url = conn.partialUrl
    conn.partialUrl = ''
  }

  conn.request(methods[method ?? 0] ?? 'GET', url, minor, headers, upgrade, keepAlive)
  return 0
}

function onRequestBody(this: NativeParser, chunk: Buffer): void {
  ;(this as RequestParser).conn.reading?.requestBody(chunk)
}

function onRequestComplete(this: NativeParser): void {
  const conn = (this as RequestParser).conn
  const ex = conn.reading
  conn.reading = undefined
  // fields handed over after the head are a chunked body's trailers
  let trailers: string[] | undefined
  if (conn.partialHeaders.length > 0) {
    trailers = conn.partialHeaders
    conn.partialHeaders = []
  }

  ex?.requestComplete(trailers)
}

/** A read of the consumed socket was parsed. */
function onRequestExecute(this: NativeParser, ret: number | ParseError): void {
  const conn = (this as RequestParser).conn
  touchSocket(conn.socket)
  conn.lastRead = performance.now()
  conn.parsed(ret, undefined)
}

/**
 * One client connection: a native request parser that reads the socket's handle itself (as node:http's server
 * does: no 'data' events, no stream buffers), requests answered in order (a pipelined request waits, with reading
 * stopped, until the one before it is answered).
 */
class ClientConnection {
  readonly parser: RequestParser
  readonly remoteAddress: string
  /** The client is a trusted proxy: its forwarding headers are kept. */
  readonly trusted: boolean
  /** When the head being read began (0: none is); the proxy's timer cuts heads that take too long. */
  headStart = 0
  /** When the socket was last read. */
  lastRead = 0
  /** Requests received and not yet answered; the first is the one being served. */
  queue: Exchange[] = []
  /** The request whose body the parser is reading. */
  reading: Exchange | undefined = undefined
  partialHeaders: string[] = []
  partialUrl = ''
  /** The client sent its FIN: close once the queue is answered. */
  ended = false
  closed = false
  /** The socket went to a WebSocket (Upgrade) tunnel. */
  tunnelled = false
  /** Reading is paused: a request waits in the queue, or a body waits for its upstream. */
  paused = false
  /** The parser reads the socket's handle (else 'data' events feed it). */
  consumed = false
  /** Parsing is over (CONNECT refused): the socket reads on (to see the client's end), to no listener. */
  private stopped = false

  constructor(
    readonly proxy: ProxyServer,
    readonly socket: Socket,
  ) {
    this.remoteAddress = socket.remoteAddress ?? ''
    this.trusted = proxy.trustedProxy?.(this.remoteAddress) ?? false
    socket.setNoDelay(true)
    socket.setTimeout(proxy.limits.idleTimeoutMs)
    const parser = createParser('request', proxy.limits.maxHeaderBytes) as RequestParser
    parser.conn = this
    parser[kOnMessageBegin] = onRequestBegin
    parser[kOnHeaders] = onRequestHeaders
    parser[kOnHeadersComplete] = onRequestHeadersComplete
    parser[kOnBody] = onRequestBody
    parser[kOnMessageComplete] = onRequestComplete
    this.parser = parser
    // the fallback when the handle cannot be consumed; it also keeps the stream flowing, so 'end' is emitted
    socket.on('data', this.onData)
    parser[kOnExecute] = onRequestExecute
    this.consumed = consumeSocket(parser, socket)

    socket.on('end', () => {
      // as node:http does: a client that ends its side abandons what it has not had answered yet
      this.ended = true
      if (this.tunnelled) return
      const active = this.queue[0]
      this.queue = []
      active?.clientGone()
      socket.end()
    })
    socket.on('drain', () => {
      this.queue[0]?.up?.resume()
    })
    socket.on('timeout', () => {
      if (this.queue.length === 0 && !this.tunnelled) socket.destroy()
    })
    socket.on('error', () => {})
    socket.on('close', () => this.onClose())
  }

  private readonly onData = (chunk: Buffer): void => {
    const {socket} = this
    this.lastRead = performance.now()
    socket.cork()
    const ret = this.parser.execute(chunk)
    socket.uncork()
    this.parsed(ret, chunk)
  }

  /** A read was parsed: `chunk` is the read, undefined when the parser consumes the socket. */
  parsed(ret: number | ParseError, chunk: Buffer | undefined): void {
    if (typeof ret !== 'number') {
      this.parseError(ret)
      return
    }

    if (this.stopped) {
      this.detach()
      return
    }

    const last = this.queue.at(-1)
    if (last?.upgrade === true && last.head === undefined) {
      // the parser stopped after the Upgrade request's head: the rest belongs to the tunnel
      last.head = (chunk ?? this.parser.getCurrentBuffer()).subarray(ret)
      this.detach()
      this.socket.pause()
      if (this.queue[0] === last) this.proxy.upgrade(last)
    }
  }

  /** Stops parsing: reads go back to the socket's stream, which flows again if it was stopped. */
  private detach(): void {
    this.socket.off('data', this.onData)
    if (!this.consumed) return
    this.consumed = false
    releaseSocket(this.parser, this.socket)
  }

  private parseError(error: ParseError): void {
    this.parser[kOnBody] = undefined
    this.parser[kOnMessageComplete] = undefined
    this.detach()
    // data after a request that closes the connection: ignored, the connection closes after its response
    if (error.code === 'HPE_CLOSED_CONNECTION') return
    if (this.queue.length > 0 || this.closed) {
      this.socket.destroy()
      return
    }

    this.socket.end(error.code === 'HPE_HEADER_OVERFLOW' ? TOO_LARGE : BAD_REQUEST)
  }

  /** A request's head arrived. */
  request(method: string, url: string, minor: number, headers: string[], upgrade: boolean, keepAlive: boolean): void {
    // a request parsed after the connection was told to close (pipelined behind a closing one) is dropped
    if (this.socket.writableEnded) return
    if (upgrade && method === 'CONNECT') {
      this.stopped = true
      this.socket.off('data', this.onData)
      this.parser[kOnMessageComplete] = undefined
      rawReply(this.socket, 405, {error: 'CONNECT is refused: svc proxy forwards only to registered services'})
      return
    }

    const ex = new Exchange(this, method, url, minor, headers, keepAlive && !upgrade, upgrade)
    this.queue.push(ex)
    this.reading = upgrade ? undefined : ex
    if (this.queue.length === 1) {
      if (!upgrade) this.proxy.start(ex)
    } else this.pause()
  }

  pause(): void {
    if (this.paused) return
    this.paused = true
    setFlowing(this.socket, this.consumed, false)
  }

  resume(): void {
    if (!this.paused || this.tunnelled) return
    this.paused = false
    setFlowing(this.socket, this.consumed, true)
  }

  /** The first request in the queue is answered (and its body read): serve the next. */
  done(ex: Exchange): void {
    if (this.queue[0] !== ex) return
    this.queue.shift()
    if (this.closed) return
    if (ex.closeAfter) {
      this.queue = []
      this.socket.end()
      return
    }

    const next = this.queue[0]
    if (next === undefined) {
      if (this.ended) this.socket.end()
      else this.resume()
      return
    }

    if (next.upgrade) {
      if (next.head !== undefined) this.proxy.upgrade(next)
      return
    }

    // a body that arrived with the head is read once this request is served; the one after waits
    if (this.queue.length === 1) this.resume()
    this.proxy.start(next)
  }

  /**
   * The proxy's timer: a head that has taken longer than the headers timeout, or a body the client stopped sending
   * while the proxy waits for it, ends the connection with 408 (or cuts it, when a response has started).
   */
  checkTimeouts(now: number, limits: ProxyLimits): void {
    if (this.closed || this.tunnelled) return
    const slowHead = this.headStart > 0 && now - this.headStart > limits.headersTimeoutMs
    const body = this.reading
    const slowBody = body !== undefined && !this.paused && now - this.lastRead > limits.bodyTimeoutMs
    if (!slowHead && !slowBody) return
    this.headStart = 0
    this.stopped = true
    this.detach()
    const active = this.queue[0]
    if (active === undefined || (slowBody && active === body && !active.responseStarted)) {
      this.queue = []
      active?.clientGone(408)
      this.socket.end(REQUEST_TIMEOUT)
      this.socket.destroySoon()
    } else this.socket.destroy()
  }

  /** Under drain: an idle connection closes now, a busy one after its response. */
  closeIfIdle(): void {
    if (this.queue.length === 0 && !this.tunnelled) this.socket.end()
  }

  private onClose(): void {
    this.closed = true
    this.proxy.connections.delete(this)
    const active = this.queue[0]
    this.queue = []
    if (active !== undefined && !this.tunnelled) active.clientGone()
  }
}

/**
 * One request: its head as parsed, where it goes, and the upstream connection serving it. A class with fields,
 * not closures, so a request costs one object; it is the pool's client for its upstream connection.
 */
class Exchange implements PoolClient {
  readonly downstream: Socket
  route: Route | undefined = undefined
  upstream: Target | undefined = undefined
  key: string | undefined = undefined
  started = 0
  /** The upstream request's head after the request line, with the closing blank line. */
  headerBlock = ''
  path = ''
  host: string | undefined = undefined
  hasBody = false
  chunkedIn = false
  expectContinue = false
  /** The request body's trailer fields (chunked), sent on with its last chunk. */
  trailers: string[] | undefined = undefined
  /** Body chunks read before the upstream connection was ready. */
  pending: Buffer[] | undefined = undefined
  up: UpstreamConnection | undefined = undefined
  /** Dispatched upstream, and counted in flight until settled. */
  forwarded = false
  settled = false
  retried = false
  /** Sent again on a new connection after a kept-alive one closed under it. */
  resent = false
  requestDone = false
  /** The upstream request body was written whole. */
  bodySent = false
  responseStarted = false
  responseDone = false
  status = 0
  chunkOut = false
  closeAfter = false
  upKeepAlive = false
  head: Buffer | undefined = undefined

  constructor(
    readonly conn: ClientConnection,
    readonly method: string,
    readonly url: string,
    readonly minor: number,
    readonly rawHeaders: string[],
    readonly keepAlive: boolean,
    readonly upgrade: boolean,
  ) {
    this.downstream = conn.socket
    if (!upgrade) this.scanHeaders()
  }

  /**
   * One pass over the request's headers: the upstream header block (hop-by-hop headers dropped, X-Forwarded-*
   * set), Host, the body's framing and Expect.
   */
  private scanHeaders(): void {
    const head = upstreamHeaders(this.rawHeaders, this.conn.remoteAddress, false, this.conn.trusted)
    this.host = head.host
    this.hasBody = head.hasBody
    this.chunkedIn = head.chunked
    this.expectContinue = head.expectContinue
    this.headerBlock = head.block + (head.chunked ? 'transfer-encoding: chunked\r\n\r\n' : '\r\n')
  }

  /** A piece of the request body from the parser. */
  requestBody(chunk: Buffer): void {
    if (this.responseDone || this.settled) return
    const up = this.up
    if (up === undefined) {
      ;(this.pending ??= []).push(chunk)
      this.conn.pause()
      return
    }

    if (!this.writeBody(up.socket, chunk)) this.conn.pause()
  }

  private writeBody(socket: Socket, chunk: Buffer): boolean {
    if (!this.chunkedIn) return socket.write(chunk)
    socket.write(chunk.length.toString(16) + '\r\n', 'latin1')
    socket.write(chunk)
    return socket.write('\r\n', 'latin1')
  }

  requestComplete(trailers: string[] | undefined): void {
    this.requestDone = true
    this.trailers = trailers
    const up = this.up
    if (up !== undefined && !this.bodySent) {
      this.bodySent = true
      if (this.chunkedIn) up.socket.write(lastChunk(trailers), 'latin1')
    }

    if (this.responseDone) this.conn.done(this)
  }

  // --- the pool's client ---

  onUpstream(conn: UpstreamConnection): void {
    if (this.settled) {
      conn.pool.release(conn)
      return
    }

    this.up = conn
    conn.head = this.method === 'HEAD'
    const {socket} = conn
    socket.cork()
    // HTTP/1.1 needs a Host: an HTTP/1.0 client may have sent none
    const host = this.host === undefined ? 'host: ' + this.upstream!.hostPort + '\r\n' : ''
    socket.write(this.method + ' ' + this.path + ' HTTP/1.1\r\n' + host + this.headerBlock, 'latin1')
    const {pending} = this
    let flowing = true
    if (pending !== undefined) {
      this.pending = undefined
      for (const chunk of pending) flowing = this.writeBody(socket, chunk)
    }

    if (this.requestDone || !this.hasBody) {
      this.bodySent = true
      if (this.chunkedIn) socket.write(lastChunk(this.trailers), 'latin1')
    }

    socket.uncork()
    if (flowing && this.conn.queue.length === 1) this.conn.resume()
  }

  onUpstreamDrain(): void {
    if (this.conn.queue.length === 1) this.conn.resume()
  }

  onInformational(status: number, reason: string, headers: string[]): void {
    // an HTTP/1.0 client knows no interim responses; the 100 this hop owes a client was sent when it was due
    if (this.settled || this.responseStarted || this.minor === 0 || status === 100) return
    const line = STATUS_LINES[status] ?? `HTTP/1.1 ${status} ${reason}\r\n`
    this.downstream.write(line + downstreamHeaders(headers).block + '\r\n', 'latin1')
  }

  onResponseHead(status: number, reason: string, headers: string[], keepAlive: boolean): number {
    if (this.settled) return 0
    this.status = status
    const noBody = this.method === 'HEAD' || status === 204 || status === 304
    const head = downstreamHeaders(headers)
    let {block} = head

    const http11 = this.minor >= 1
    let closeAfter = !this.keepAlive || this.conn.proxy.draining || this.closeAfter
    // a body without a length: chunked to an HTTP/1.1 client, delimited by closing to an HTTP/1.0 one
    if (!noBody && (head.chunked || !head.hasLength)) {
      if (http11) this.chunkOut = true
      else closeAfter = true
    }

    this.closeAfter = closeAfter
    this.upKeepAlive = keepAlive
    let line = STATUS_LINES[status]
    if (line === undefined || STATUS_CODES[status] !== reason) line = `HTTP/1.1 ${status} ${reason}\r\n`
    if (this.chunkOut) block += 'transfer-encoding: chunked\r\n'
    if (closeAfter) block += 'connection: close\r\n'
    else if (!http11) block += 'connection: keep-alive\r\n'
    this.responseStarted = true
    this.downstream.write(line + block + '\r\n', 'latin1')
    return 0
  }

  onResponseBody(chunk: Buffer): void {
    if (this.settled) return
    const out = this.downstream
    let ok: boolean
    if (this.chunkOut) {
      out.write(chunk.length.toString(16) + '\r\n', 'latin1')
      out.write(chunk)
      ok = out.write('\r\n', 'latin1')
    } else ok = out.write(chunk)
    if (!ok) this.up?.pause()
  }

  onResponseEnd(trailers: string[] | undefined): void {
    const up = this.up!
    this.up = undefined
    if (this.settled) {
      up.abandon()
      return
    }

    if (this.chunkOut) this.downstream.write(lastChunk(trailers), 'latin1')
    up.resume()
    // a connection whose request body was not all sent (an early answer) cannot carry another request
    if (this.upKeepAlive && this.bodySent) up.pool.release(up)
    else up.abandon()
    const upstream = this.upstream!
    upstream.inflight--
    this.route!.outcome(upstream, this.status >= 500)
    this.responseDone = true
    this.conn.proxy.settle(this, this.status)
    if (this.requestDone || this.closeAfter) this.conn.done(this)
    // answered before its body was all read: read (and drop) the rest
    else this.conn.resume()
  }

  onUpstreamError(error: Error, reused: boolean): void {
    this.up = undefined
    if (this.settled) return
    this.conn.proxy.failed(this, error, reused)
  }

  /** Answers the request from the proxy itself (404, 502, ...). */
  reply(status: number, body: Record<string, unknown>): void {
    const text = JSON.stringify(body) + '\n'
    // a client waiting for 100 Continue may never send the body it announced
    if (this.expectContinue && !this.requestDone) this.closeAfter = true
    const close = !this.keepAlive || this.closeAfter || this.conn.proxy.draining
    this.closeAfter = close
    this.responseStarted = true
    this.downstream.write(
      (STATUS_LINES[status] ?? `HTTP/1.1 ${status} Error\r\n`) +
        'content-type: application/json\r\ncontent-length: ' +
        Buffer.byteLength(text) +
        (close
          ? '\r\nconnection: close\r\n\r\n'
          : this.minor === 0
            ? '\r\nconnection: keep-alive\r\n\r\n'
            : '\r\n\r\n') +
        text,
      'latin1',
    )
    this.responseDone = true
  }

  /** The client's connection closed (or was cut: `status`) while this request was being served. */
  clientGone(status = 499): void {
    if (this.settled || !this.forwarded) return
    const up = this.up
    this.up = undefined
    if (up === undefined) {
      this.upstream?.pool.cancel(this)
    } else {
      up.abandon()
    }

    this.upstream!.inflight--
    this.conn.proxy.settle(this, status)
  }
}

/**
 * The gateway: a net server whose connections are parsed with Node's native HTTP parser; each request goes,
 * through the in-memory route table, to a keep-alive connection pool of its upstream instance (raw sockets, the
 * response parsed only to find its end and rewrite its head). Upgrades (WebSocket) are spliced as raw sockets.
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
  private readonly accessLog: ((line: string) => void) | undefined
  private idle: (() => void) | undefined

  constructor(private readonly opts: ProxyOptions) {
    this.hashKey = opts.strategy === 'hash' ? (opts.hashKey ?? {kind: 'ip'}) : undefined
    this.hostRouting = opts.hostRouting ?? false
    this.accessLog = opts.accessLog
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
    this.metrics = new ProxyMetrics(this.table)
    this.server = createServer({allowHalfOpen: true}, (socket) => {
      this.connections.add(new ClientConnection(this, socket))
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
      this.reply(ex, route, 503, {
        error: `no healthy instance of "${route.name}"`,
        service: route.name,
        instances: route.upstreams.size,
      })
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

  /**
   * The route for a request target, or why it is refused: the target must be origin-form, within the size limit,
   * and keep naming the same service once its dot segments are resolved (`/a/../b/` reaches neither).
   */
  private resolve(url: string, host: string | undefined): RouteMatch<ConnectionPool> | Refusal {
    if (url.length > this.limits.maxUrlBytes)
      return {status: 414, error: `request target longer than ${this.limits.maxUrlBytes} bytes`, close: true}
    if (url.codePointAt(0) !== 47) {
      return {
        status: 400,
        error: 'only origin-form request targets (/<service>/<path>) are served: svc proxy is not an open proxy',
      }
    }

    const target = normalizeTarget(url)
    if (!target.ok) {
      return target.problem === 'backslash'
        ? {status: 400, error: 'a backslash in the path is refused'}
        : {status: 404, error: 'the path climbs above the root with ..'}
    }

    const hostKey = this.hostRouting ? host : undefined
    const match = this.table.match(target.url, hostKey)
    if (match === undefined) return {status: 404, error: 'no service named in the path: use /<service>/<path>'}
    if (target.url !== url && this.table.match(url, hostKey)?.service !== match.service) {
      return {
        status: 404,
        error: `the path's dot segments lead out of the service it names: send ${target.url} instead`,
      }
    }

    return match
  }

  /** An attempt failed: retry it elsewhere when that is safe, else answer 502/504 (or cut a started response). */
  failed(ex: Exchange, error: Error, reused: boolean): void {
    const route = ex.route!
    const upstream = ex.upstream!
    const kind = errorKind(error)
    const code = (error as NodeJS.ErrnoException).code
    if (reused && kind === 'reset' && !ex.resent && !ex.responseStarted && !ex.hasBody && IDEMPOTENT.has(ex.method)) {
      // a kept-alive connection the upstream closed as the request went out: not the instance's fault, send
      // it again on another connection of the same instance (once)
      ex.resent = true
      upstream.pool.acquire(ex)
      return
    }

    upstream.inflight--
    const poolClosed = code === 'EPOOLCLOSED'
    if (!poolClosed) {
      this.metrics.upstreamErrors.inc({service: route.name, instance: upstream.id, kind})
      route.outcome(upstream, true)
    }

    if (
      !ex.responseStarted &&
      !ex.retried &&
      !ex.hasBody &&
      (kind === 'connect' || kind === 'reset' || poolClosed || code === 'ECONNECTTIMEOUT') &&
      IDEMPOTENT.has(ex.method) &&
      this.budget.tryRetry()
    ) {
      const other = route.balancer.pickOther(upstream, ex.key)
      if (other !== undefined) {
        ex.retried = true
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

  /** Handles an Upgrade request (WebSocket) by splicing the client's socket to a new upstream connection. */
  upgrade(ex: Exchange): void {
    const conn = ex.conn
    const socket = conn.socket
    conn.tunnelled = true
    conn.queue = []
    socket.setTimeout(0)
    socket.on('error', () => socket.destroy())
    const head = ex.head ?? Buffer.alloc(0)
    const {url} = ex
    ex.started = performance.now()
    const host = this.hostRouting ? hostOf(ex.rawHeaders) : undefined
    const found = this.resolve(url, host)
    // a refused target gets the same 404 as a path that names no service
    const match = 'status' in found ? undefined : found
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
      this.finish(ex, this.metrics.stats(route), status, undefined)
      return
    }

    const upstream = route.balancer.pick(
      this.hashKey === undefined ? undefined : hashKeyOf(this.hashKey, ex.rawHeaders, conn.remoteAddress),
    )
    if (upstream === undefined) {
      rawReply(socket, 503, {error: `no healthy instance of "${route.name}"`, service: route.name})
      this.finish(ex, this.metrics.stats(route), 503, undefined)
      return
    }

    const text = `${ex.method} ${match.path} HTTP/1.1\r\n${upstreamHeaders(ex.rawHeaders, conn.remoteAddress, true, conn.trusted).block}\r\n`
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
      if (connected) this.finish(ex, this.metrics.stats(route), status || 502, upstream)
      this.idle?.()
    }

    up.once('timeout', () => up.destroy(new Error(`connect timed out after ${this.opts.connectTimeoutMs} ms`)))
    up.once('connect', () => {
      connected = true
      up.setTimeout(0)
      route.outcome(upstream, false)
      up.write(text, 'latin1')
      if (head.length > 0) up.write(head)
      up.once('data', (chunk: Buffer) => {
        status = Number(chunk.toString('latin1', 9, 12)) || 0
      })
      up.pipe(socket)
      socket.pipe(up)
      socket.resume()
    })
    up.on('error', (error) => {
      if (!connected && this.tunnels.has(socket)) {
        this.tunnels.delete(socket)
        upstream.inflight--
        this.metrics.upstreamErrors.inc({service: route.name, instance: upstream.id, kind: errorKind(error)})
        route.outcome(upstream, true)
        rawReply(socket, 502, {error: `upstream failed: ${error.message}`, service: route.name, instance: upstream.id})
        this.finish(ex, this.metrics.stats(route), 502, upstream)
        this.idle?.()
        return
      }

      close()
    })
    up.on('close', close)
    socket.on('close', close)
  }

  private reply(ex: Exchange, route: Route | undefined, status: number, body: Record<string, unknown>): void {
    ex.reply(status, body)
    this.finish(ex, this.metrics.stats(route), status, undefined)
    if (ex.requestDone || ex.closeAfter) ex.conn.done(ex)
  }

  private finish(req: Exchange, stats: ServiceStats, status: number, upstream: Target | undefined): void {
    const ms = performance.now() - req.started
    stats.request(status, ms / 1000)
    if (this.accessLog !== undefined) {
      this.accessLog(
        `${new Date().toISOString()} ${req.conn.remoteAddress || '-'} "${req.method} ${req.url} HTTP/1.${req.minor}" ${status} ${ms.toFixed(1)}ms ${stats.service} ${upstream?.hostPort ?? '-'}`,
      )
    }
  }
}

/** The first Host header of raw [name, value, ...] headers. */
function hostOf(raw: readonly string[]): string | undefined {
  for (let i = 0; i < raw.length; i += 2)
    if (raw[i]!.length === 4 && raw[i]!.toLowerCase() === 'host') return raw[i + 1]
  return undefined
}

/** A whole HTTP/1.1 response written to a raw socket (upgrade and CONNECT paths), then the socket is closed. */
function rawReply(socket: Socket, status: number, body: Record<string, unknown>): void {
  const text = JSON.stringify(body) + '\n'
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
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
  if (code === 'ECONNECTTIMEOUT' || code === 'ERESPONSETIMEOUT') return 'timeout'
  if (code === 'EUPSTREAMCLOSED' || code === 'ECONNRESET' || code === 'EPIPE') return 'reset'
  return 'other'
}
