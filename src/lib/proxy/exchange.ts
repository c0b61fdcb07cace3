import type {Socket} from 'node:net'
import {performance} from 'node:perf_hooks'

import type {ClientConnection} from './client-connection.js'
import {type FramingRefusal, requestRefusal, responseFraming} from './framing.js'
import {downstreamHeaders, schemeOf, upstreamHeaders} from './headers.js'
import {errorResponse, LAST_CHUNK, STATUS_LINES, statusLine} from './replies.js'
import type {ServiceRoute, Upstream} from './routes.js'
import {type ConnectionPool, type PoolClient, UpstreamError, type UpstreamConnection} from './upstream-pool.js'

type Route = ServiceRoute<ConnectionPool>
type Target = Upstream<ConnectionPool>

/** The end of a response's chunked body, with its trailer fields (hop-by-hop ones dropped) when there are any. */
function lastChunk(trailers: readonly string[] | undefined): string {
  if (trailers === undefined) return LAST_CHUNK
  return '0\r\n' + downstreamHeaders(trailers).block + '\r\n'
}

/**
 * One request: its head as parsed, where it goes, and the upstream connection serving it. A class with fields,
 * not closures, so a request costs one object; it is the pool's client for its upstream connection.
 */
export class Exchange implements PoolClient {
  readonly downstream: Socket
  route: Route | undefined = undefined
  upstream: Target | undefined = undefined
  key: string | undefined = undefined
  started = 0
  /** When the request last went upstream (set only when the access log wants the upstream time). */
  sentAt = 0
  /** Response body bytes sent to the client. */
  bytes = 0
  /** The upstream request's head after the request line, with the closing blank line. */
  headerBlock = ''
  path = ''
  host: string | undefined = undefined
  hasBody = false
  chunkedIn = false
  expectContinue = false
  /** Why the proxy answers this request itself, whatever its target: its framing is refused (connection closes). */
  refusal: FramingRefusal | undefined = undefined
  /** Body chunks read before the upstream connection was ready. */
  pending: Buffer[] | undefined = undefined
  up: UpstreamConnection | undefined = undefined
  /** Dispatched upstream, and counted in flight until settled. */
  forwarded = false
  settled = false
  /** Attempts made on other instances after a failure. */
  retries = 0
  /** The instances this request failed on: a retry never goes back to one of them. */
  tried: Set<Upstream<ConnectionPool>> | undefined = undefined
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
  /** What an Upgrade request's client sent after its head: the tunnel's first bytes, once the upstream says 101. */
  head: Buffer | undefined = undefined

  constructor(
    readonly conn: ClientConnection,
    readonly method: string,
    readonly url: string,
    major: number,
    readonly minor: number,
    readonly rawHeaders: string[],
    readonly keepAlive: boolean,
    readonly upgrade: boolean,
  ) {
    this.downstream = conn.socket
    const head = upstreamHeaders(rawHeaders, conn.remoteAddress, upgrade, conn.trusted, schemeOf(conn.socket))
    this.host = head.host
    this.hasBody = head.hasBody
    this.chunkedIn = head.chunked
    this.expectContinue = head.expectContinue
    this.headerBlock = head.block + (head.chunked ? 'transfer-encoding: chunked\r\n\r\n' : '\r\n')
    this.refusal =
      method === 'CONNECT'
        ? {status: 405, error: 'CONNECT is refused: svc proxy forwards only to registered services'}
        : requestRefusal(major, minor, head, upgrade)
    if (this.refusal !== undefined) this.closeAfter = true
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

  /** The request body ended; a chunked body's trailer fields are dropped (as nginx does): none reach the upstream. */
  requestComplete(): void {
    this.requestDone = true
    const up = this.up
    if (up !== undefined && !this.bodySent) {
      this.bodySent = true
      if (this.chunkedIn) up.socket.write(LAST_CHUNK, 'latin1')
    }

    if (this.responseDone) this.conn.done(this)
  }

  // --- the pool's client ---

  onUpstream(conn: UpstreamConnection): void {
    if (this.settled) {
      conn.client = undefined
      conn.pool.reuse(conn)
      return
    }

    this.up = conn
    if (this.conn.proxy.timing) this.sentAt = performance.now()
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
      if (this.chunkedIn) socket.write(LAST_CHUNK, 'latin1')
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
    const head = downstreamHeaders(headers)
    const framing = responseFraming(head, this.method === 'HEAD' || status === 204 || status === 304)
    if (framing.kind === 'bad') {
      this.up?.fail(new UpstreamError(framing.error, 'EUPSTREAMPROTO'))
      return 0
    }

    this.status = status
    let {block} = head
    const http11 = this.minor >= 1
    // an Upgrade request answered without a 101 ends its connection: what the client sent after it is never parsed
    let closeAfter = !this.keepAlive || this.conn.proxy.draining || this.closeAfter
    // a body without a length: chunked to an HTTP/1.1 client, delimited by closing to an HTTP/1.0 one
    if (framing.kind === 'chunked' || framing.kind === 'close') {
      if (http11) this.chunkOut = true
      else closeAfter = true
    }

    this.closeAfter = closeAfter
    this.upKeepAlive = keepAlive
    if (this.chunkOut) block += 'transfer-encoding: chunked\r\n'
    if (closeAfter) block += 'connection: close\r\n'
    else if (!http11) block += 'connection: keep-alive\r\n'
    this.responseStarted = true
    this.downstream.write(statusLine(status, reason) + block + '\r\n', 'latin1')
    return 0
  }

  onResponseBody(chunk: Buffer): void {
    if (this.settled) return
    const out = this.downstream
    this.bytes += chunk.length
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

  onSwitchingProtocols(socket: Socket, rest: Buffer, reason: string, headers: string[]): void {
    this.up = undefined
    if (this.settled) {
      socket.destroy()
      return
    }

    this.conn.proxy.tunnel(this, socket, rest, reason, headers)
  }

  /** Answers the request from the proxy itself (404, 502, ...); `extra`: more header lines (Retry-After). */
  reply(status: number, body: Record<string, unknown>, extra = ''): void {
    // a client waiting for 100 Continue may never send the body it announced
    if (this.expectContinue && !this.requestDone) this.closeAfter = true
    const close = !this.keepAlive || this.closeAfter || this.conn.proxy.draining
    this.closeAfter = close
    this.responseStarted = true
    const text = errorResponse(status, body, close, this.minor === 0, extra)
    this.bytes = text.length - text.indexOf('\r\n\r\n') - 4
    this.downstream.write(text, 'latin1')
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
