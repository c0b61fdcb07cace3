import {connect, type Socket} from 'node:net'

import {
  consumeSocket,
  createParser,
  freeParser,
  kOnBody,
  kOnExecute,
  kOnHeaders,
  kOnHeadersComplete,
  kOnMessageBegin,
  kOnMessageComplete,
  type NativeParser,
  type ParseError,
  releaseSocket,
  setFlowing,
  touchSocket,
} from './http-parser.js'
import type {ConnectionPool} from './upstream-pool.js'

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
  /** The request asked to switch protocols (Upgrade): only such a request may get a 101. */
  readonly upgrade: boolean
  /**
   * The upstream answered 101: the connection left the pool and is the client's now, with `rest`, the bytes it sent
   * after the 101's head.
   */
  onSwitchingProtocols(socket: Socket, rest: Buffer, reason: string, headers: string[]): void
  /**
   * The client's socket, corked while a read from the upstream is parsed (from the head or body written); none for
   * an HTTP/2 stream, whose session writes its frames itself.
   */
  readonly downstream: Socket | undefined
}

/** Response parser callbacks: `this` is the parser, its connection in `conn`. */
interface ResponseParser extends NativeParser {
  conn: UpstreamConnection
}

/** A response begins: one that no request is waiting for (bytes beyond the last response) closes the connection. */
function onMessageBegin(this: NativeParser): void {
  const conn = (this as ResponseParser).conn
  if (conn.client === undefined) conn.fail(undefined)
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
  if (code === 101) {
    if (client?.upgrade === true) conn.switching = {reason: reason ?? '', headers: all}
    else conn.fail(new UpstreamError('a 101 to a request that asked for no upgrade', 'EUPSTREAMPROTO'))
    return 0
  }

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
  /** A response ended and the connection goes back to the pool once the rest of its read is parsed. */
  releasing = false
  /** The upstream answered 101 to an Upgrade: the connection becomes a tunnel after this read. */
  switching: {reason: string; headers: string[]} | undefined = undefined
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
    parser[kOnMessageBegin] = onMessageBegin
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
      if (c === undefined) pool.reuse(this)
      else c.onUpstream(this)
    })
    // the fallback when the handle cannot be consumed; it also keeps the stream flowing, so 'end' is emitted
    socket.on('data', this.onData)
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
      freeParser(parser, this.consumed)
      this.consumed = false
      this.fail(
        this.client === undefined
          ? undefined
          : new UpstreamError('the upstream connection closed before the response ended', 'EUPSTREAMCLOSED'),
      )
    })
    socket.on('drain', () => this.client?.onUpstreamDrain())
  }

  /** Corks `out` until the read being parsed is done. */
  corkOut(out: Socket | undefined): void {
    if (out === undefined || this.corked === out) return
    this.corked?.uncork()
    this.corked = out
    out.cork()
  }

  private readonly onData = (chunk: Buffer): void => {
    this.parsed(this.parser.execute(chunk), chunk)
  }

  /** A read was parsed: `chunk` is the read, undefined when the parser consumes the socket. */
  parsed(ret: number | ParseError, chunk?: Buffer): void {
    const out = this.corked
    if (out !== undefined) {
      this.corked = undefined
      out.uncork()
    }

    if (typeof ret !== 'number') {
      this.fail(new UpstreamError(`invalid response: ${ret.code}`, 'EUPSTREAMPROTO'))
      return
    }

    if (this.switching !== undefined) this.switchOver((chunk ?? this.parser.getCurrentBuffer()).subarray(ret))
    else if (this.releasing) {
      // the whole read is parsed and held nothing beyond the response (else the connection failed): reuse it
      this.releasing = false
      if (!this.dead) this.pool.reuse(this)
    }
  }

  /** Hands the socket, with what followed the 101, to the request that asked for the upgrade; the pool forgets it. */
  private switchOver(rest: Buffer): void {
    const {client, switching, socket} = this
    this.switching = undefined
    this.client = undefined
    this.dead = true
    socket.off('data', this.onData)
    if (this.consumed) {
      this.consumed = false
      releaseSocket(this.parser, socket)
    }

    this.pool.discard(this)
    if (client === undefined || switching === undefined) {
      socket.destroy()
      return
    }

    client.onSwitchingProtocols(socket, rest, switching.reason, switching.headers)
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
