import {connect, type Socket} from 'node:net'

import {
  consumeSocket,
  createParser,
  kOnBody,
  kOnExecute,
  kOnHeaders,
  kOnHeadersComplete,
  kOnMessageComplete,
  type NativeParser,
  type ParseError,
  setFlowing,
  touchSocket,
} from './http-parser.js'
import type {UpstreamPool} from './routes.js'

/** An upstream attempt's failure; `code` says what kind (see errorKind in server.ts). */
export class UpstreamError extends Error {
  override name = 'UpstreamError'
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message)
  }
}

/** The request an upstream connection serves: it gets the connection, then the response's head, body and end. */
export interface PoolClient {
  /** A connection is ready (new or reused); the client writes its request on it. */
  onUpstream(conn: UpstreamConnection): void
  /**
   * The connection failed, or never came; the client is no longer on it. `reused`: the connection had served
   * responses before (a kept-alive one the upstream may have closed as the request went out).
   */
  onUpstreamError(error: Error, reused: boolean): void
  /** An interim (1xx) response other than 101; the final response follows on the same connection. */
  onInformational(status: number, reason: string, headers: string[]): void
  /** Returns 1 when the response has no body (a response to HEAD). Not called for 1xx responses. */
  onResponseHead(status: number, reason: string, headers: string[], keepAlive: boolean): number
  onResponseBody(chunk: Buffer): void
  /** The response ended; `trailers` are the trailer fields of a chunked body, as [name, value, ...]. */
  onResponseEnd(trailers: string[] | undefined): void
  /** The upstream socket drained after a write returned false. */
  onUpstreamDrain(): void
  /** The client's socket, corked while a read from the upstream is parsed (from the head or body written). */
  readonly downstream: Socket
}

export interface PoolOptions {
  host: string
  port: number
  /** Open connections at most; further requests wait for one. */
  max: number
  connectTimeoutMs: number
  /** Inactivity on a busy connection (waiting for the response head or between body reads). */
  timeoutMs: number
  /** An idle connection is closed after this long (below node:http's default keep-alive timeout of 5 s). */
  idleMs: number
}

export const DEFAULT_IDLE_MS = 3000

/** Response parser callbacks: `this` is the parser, its connection in `conn`. */
interface ResponseParser extends NativeParser {
  conn: UpstreamConnection
}

/** Header fields beyond the parser's batch of 32 (before the head completes), or trailers (after it). */
function onHeaders(this: NativeParser, headers: string[]): void {
  const conn = (this as ResponseParser).conn
  for (const h of headers) conn.fields.push(h)
}

function onHeadersComplete(
  this: NativeParser,
  _major: number,
  _minor: number,
  headers: string[] | undefined,
  _method: number | undefined,
  _url: string | undefined,
  status: number | undefined,
  reason: string | undefined,
  _upgrade: boolean,
  keepAlive: boolean,
): number {
  const conn = (this as ResponseParser).conn
  let all = headers ?? []
  if (conn.fields.length > 0) {
    all = headers === undefined ? conn.fields : [...conn.fields, ...headers]
    conn.fields = []
  }

  const code = status ?? 0
  conn.status = code
  const client = conn.client
  if (code < 200) {
    if (code !== 101 && client !== undefined) {
      conn.corkOut(client.downstream)
      client.onInformational(code, reason ?? '', all)
    }

    return 0
  }

  if (client === undefined) return conn.head ? 1 : 0
  conn.corkOut(client.downstream)
  return client.onResponseHead(code, reason ?? '', all, keepAlive) === 1 || conn.head ? 1 : 0
}

function onBody(this: NativeParser, chunk: Buffer): void {
  const conn = (this as ResponseParser).conn
  const client = conn.client
  if (client === undefined) return
  conn.corkOut(client.downstream)
  client.onResponseBody(chunk)
}

function onMessageComplete(this: NativeParser): void {
  const conn = (this as ResponseParser).conn
  if (conn.status < 200) return
  const client = conn.client
  if (client === undefined) {
    conn.fail(new UpstreamError('a response came with no request', 'EUPSTREAMPROTO'))
    return
  }

  conn.client = undefined
  conn.status = 0
  let trailers: string[] | undefined
  if (conn.fields.length > 0) {
    trailers = conn.fields
    conn.fields = []
  }

  client.onResponseEnd(trailers)
}

/** A read of the consumed socket was parsed. */
function onExecute(this: NativeParser, ret: number | ParseError): void {
  const conn = (this as ResponseParser).conn
  touchSocket(conn.socket)
  conn.parsed(ret)
}

/** One keep-alive connection to an upstream: a net socket and a response parser, serving one request at a time. */
export class UpstreamConnection {
  readonly socket: Socket
  readonly parser: ResponseParser
  client: PoolClient | undefined
  /** The request in progress is a HEAD: its response has no body whatever its headers say. */
  head = false
  status = 0
  /** Header fields the parser handed over early (a head of more than 32), or a chunked body's trailers. */
  fields: string[] = []
  connected = false
  dead = false
  /** Responses completed on this connection. */
  served = 0
  idleSince = 0
  /** The parser reads the socket's handle (else 'data' events feed it). */
  consumed = false
  /** Reading is stopped: the client's socket is full. */
  paused = false
  /** The client socket corked while a read is parsed, so a response's head and body go out in one write. */
  private corked: Socket | undefined = undefined

  constructor(
    readonly pool: ConnectionPool,
    client: PoolClient,
  ) {
    this.client = client
    const {opts} = pool
    const socket = connect({host: opts.host, port: opts.port})
    this.socket = socket
    socket.setNoDelay(true)
    socket.setTimeout(opts.connectTimeoutMs)
    const parser = createParser('response') as ResponseParser
    parser.conn = this
    parser[kOnHeaders] = onHeaders
    parser[kOnHeadersComplete] = onHeadersComplete
    parser[kOnBody] = onBody
    parser[kOnMessageComplete] = onMessageComplete
    this.parser = parser
    socket.on('connect', () => {
      this.connected = true
      parser[kOnExecute] = onExecute
      this.consumed = consumeSocket(parser, socket)

      socket.setTimeout(opts.timeoutMs)
      const c = this.client
      if (c === undefined) pool.release(this)
      else c.onUpstream(this)
    })
    // the fallback when the handle cannot be consumed; it also keeps the stream flowing, so 'end' is emitted
    socket.on('data', (chunk: Buffer) => this.parsed(parser.execute(chunk)))
    socket.on('timeout', () => {
      if (!this.connected) {
        this.fail(new UpstreamError(`connect timed out after ${opts.connectTimeoutMs} ms`, 'ECONNECTTIMEOUT'))
      } else if (this.client === undefined) this.fail(undefined)
      else this.fail(new UpstreamError(`no response for ${opts.timeoutMs} ms`, 'ERESPONSETIMEOUT'))
    })
    socket.on('error', (error: Error) => this.fail(error))
    socket.on('end', () => {
      // a response delimited by the connection closing ends here
      if (this.client !== undefined) parser.finish()
      this.fail(
        this.client === undefined
          ? undefined
          : new UpstreamError('the upstream closed the connection before the response ended', 'EUPSTREAMCLOSED'),
      )
    })
    socket.on('close', () => {
      this.fail(
        this.client === undefined
          ? undefined
          : new UpstreamError('the upstream connection closed before the response ended', 'EUPSTREAMCLOSED'),
      )
    })
    socket.on('drain', () => this.client?.onUpstreamDrain())
  }

  /** Corks `out` until the read being parsed is done. */
  corkOut(out: Socket): void {
    if (this.corked === out) return
    this.corked?.uncork()
    this.corked = out
    out.cork()
  }

  /** A read was parsed. */
  parsed(ret: number | ParseError): void {
    const out = this.corked
    if (out !== undefined) {
      this.corked = undefined
      out.uncork()
    }

    if (typeof ret !== 'number') this.fail(new UpstreamError(`invalid response: ${ret.code}`, 'EUPSTREAMPROTO'))
  }

  /** Stops reading responses (the client's socket is full). */
  pause(): void {
    if (this.paused) return
    this.paused = true
    setFlowing(this.socket, this.consumed, false)
  }

  resume(): void {
    if (!this.paused) return
    this.paused = false
    setFlowing(this.socket, this.consumed, true)
  }

  /** Closes the connection; its request, if any, gets `error`. Idempotent. */
  fail(error: Error | undefined): void {
    if (this.dead) return
    this.dead = true
    const {client} = this
    this.client = undefined
    this.socket.destroy()
    this.pool.discard(this)
    if (client !== undefined) {
      client.onUpstreamError(error ?? new UpstreamError('connection closed', 'EUPSTREAMCLOSED'), this.served > 0)
    }
  }

  /** Closes the connection without telling its request (which gave it up). */
  abandon(): void {
    this.client = undefined
    this.fail(undefined)
  }
}

/**
 * The keep-alive connections to one upstream instance: bounded, idle ones closed after `idleMs`, a connection that
 * fails or that the upstream wants closed is discarded. Requests beyond `max` wait in order.
 */
export class ConnectionPool implements UpstreamPool {
  private readonly idle: UpstreamConnection[] = []
  private readonly waiting: PoolClient[] = []
  private readonly all = new Set<UpstreamConnection>()
  private readonly sweeper: NodeJS.Timeout
  private closed = false
  private onEmpty: (() => void) | undefined

  constructor(readonly opts: PoolOptions) {
    this.sweeper = setInterval(() => this.sweep(), Math.min(1000, opts.idleMs))
    this.sweeper.unref()
  }

  /** Connections open or opening. */
  get size(): number {
    return this.all.size
  }

  /** Hands `client` a connection now (idle one), once connected (new one), or when one frees up. */
  acquire(client: PoolClient): void {
    if (this.closed) {
      client.onUpstreamError(new UpstreamError('the instance left the route table', 'EPOOLCLOSED'), false)
      return
    }

    const conn = this.idle.pop()
    if (conn !== undefined) {
      conn.client = client
      client.onUpstream(conn)
      return
    }

    if (this.all.size < this.opts.max) this.all.add(new UpstreamConnection(this, client))
    else this.waiting.push(client)
  }

  /** `client` no longer wants a connection. */
  cancel(client: PoolClient): void {
    const i = this.waiting.indexOf(client)
    if (i !== -1) this.waiting.splice(i, 1)
  }

  /** A response ended on `conn` and the connection may be reused. */
  release(conn: UpstreamConnection): void {
    conn.client = undefined
    conn.served++
    if (this.closed || conn.dead) {
      conn.fail(undefined)
      return
    }

    const next = this.waiting.shift()
    if (next !== undefined) {
      conn.client = next
      next.onUpstream(conn)
      return
    }

    conn.idleSince = performance.now()
    this.idle.push(conn)
  }

  /** `conn` closed: forget it, and open a new one for a waiting request. */
  discard(conn: UpstreamConnection): void {
    if (!this.all.delete(conn)) return
    const i = this.idle.indexOf(conn)
    if (i !== -1) this.idle.splice(i, 1)
    const next = this.closed ? undefined : this.waiting.shift()
    if (next !== undefined) this.all.add(new UpstreamConnection(this, next))
    if (this.all.size === 0) this.onEmpty?.()
  }

  /** Stops taking requests, closes idle connections, and resolves once busy ones have finished. */
  async close(): Promise<void> {
    this.shut()
    if (this.all.size === 0) return
    await new Promise<void>((resolve) => {
      this.onEmpty = resolve
    })
  }

  /** Closes every connection now; requests on them fail. */
  async destroy(): Promise<void> {
    this.shut()
    for (const conn of this.all) conn.fail(new UpstreamError('the instance left the route table', 'EPOOLCLOSED'))
  }

  private shut(): void {
    this.closed = true
    clearInterval(this.sweeper)
    for (const client of this.waiting.splice(0)) {
      client.onUpstreamError(new UpstreamError('the instance left the route table', 'EPOOLCLOSED'), false)
    }

    for (const conn of this.idle.splice(0)) conn.fail(undefined)
  }

  private sweep(): void {
    if (this.idle.length === 0) return
    const limit = performance.now() - this.opts.idleMs
    // the oldest idle connections are at the start (idle is used as a stack)
    while (this.idle.length > 0 && this.idle[0]!.idleSince <= limit) this.idle[0]!.fail(undefined)
  }
}
