import {constants} from 'node:http2'
import type {Socket} from 'node:net'
import {performance} from 'node:perf_hooks'

import {LAST_CHUNK} from '../replies.js'
import {errorKind, IDEMPOTENT} from '../server.js'
import type {ConnectionPool, PoolClient, UpstreamConnection} from '../upstream-pool.js'
import type {H2Exchange} from './exchange.js'
import {type ForwardFields, h1ResponseHeaders, h1Trailers} from './fields.js'
import type {AttemptOptions, AttemptOutcome} from './forward-h1.js'

/**
 * One HTTP/2 request sent to an HTTP/1.1 upstream over the HTTP/1 engine's own keep-alive pool (the connections
 * and the llhttp response parser its HTTP/1 requests use), the answer streamed back as HTTP/2, trailers included.
 * In place of a node:http client request per stream, whose ClientRequest, agent and event machinery cost as much
 * CPU as the rest of the HTTP/2 path (issue 18).
 */
class PooledAttempt implements PoolClient {
  readonly upgrade = false
  readonly downstream = undefined
  private up: UpstreamConnection | undefined = undefined
  /** The request body is framed chunked: the HTTP/2 request has a body and no Content-Length. */
  private readonly chunked: boolean
  private readonly head: string
  private sentBody = false
  private bodyDone = false
  private responseStarted = false
  private keepAlive = false
  private resent = false
  private status = 0
  private finished = false

  constructor(
    private readonly ex: H2Exchange,
    private readonly pool: ConnectionPool,
    fields: ForwardFields,
    opts: AttemptOptions,
    private readonly done: (outcome: AttemptOutcome) => void,
  ) {
    this.chunked = ex.hasBody && !fields.h1.some((name, i) => i % 2 === 0 && name.toLowerCase() === 'content-length')
    const host = fields.h1.includes('host') ? '' : `host: ${ex.upstream.hostPort}\r\n`
    const framing = this.chunked ? 'transfer-encoding: chunked\r\n' : ''
    this.head = `${ex.record.method} ${opts.path} HTTP/1.1\r\n${host}${fields.block}${framing}\r\n`
  }

  start(): void {
    this.ex.cancel = () => this.cancel()
    this.pool.acquire(this)
  }

  onUpstream(conn: UpstreamConnection): void {
    if (this.finished) {
      conn.client = undefined
      conn.pool.reuse(conn)
      return
    }

    this.up = conn
    conn.head = this.ex.record.method === 'HEAD'
    this.ex.sentAt = performance.now()
    const {socket} = conn
    socket.write(this.head, 'latin1')
    if (!this.ex.hasBody) {
      this.bodyDone = true
      return
    }

    // the body goes only once connected, so a connect failure can be retried elsewhere
    this.sentBody = true
    this.sendBody(socket)
  }

  private sendBody(socket: Socket): void {
    const {stream} = this.ex
    const onData = (chunk: Buffer): void => {
      if (this.up?.socket !== socket) return
      let ok: boolean
      if (this.chunked) {
        socket.write(chunk.length.toString(16) + '\r\n', 'latin1')
        socket.write(chunk)
        ok = socket.write('\r\n', 'latin1')
      } else ok = socket.write(chunk)
      if (!ok) stream.pause()
    }

    stream.on('data', onData)
    stream.once('end', () => {
      stream.off('data', onData)
      if (this.up?.socket !== socket) return
      if (this.chunked) socket.write(LAST_CHUNK, 'latin1')
      this.bodyDone = true
    })
  }

  onUpstreamDrain(): void {
    this.ex.stream.resume()
  }

  onInformational(): void {
    // interim responses stay at this hop (node:http2 would need them as additional headers; none is needed)
  }

  onResponseHead(status: number, _reason: string, headers: string[], keepAlive: boolean): number {
    const {ex} = this
    ex.record.upstreamMs = performance.now() - ex.sentAt
    this.keepAlive = keepAlive
    this.status = status
    this.responseStarted = true
    const {stream} = ex
    if (ex.settled || stream.destroyed) return 0
    ex.record.status = status
    const empty = ex.record.method === 'HEAD' || status === 204 || status === 304
    stream.respond(h1ResponseHeaders(status, headers), {waitForTrailers: !empty, endStream: empty})
    return 0
  }

  onResponseBody(chunk: Buffer): void {
    const {stream, record} = this.ex
    if (this.ex.settled || stream.destroyed) return
    record.bytes += chunk.length
    if (!stream.write(chunk)) {
      const up = this.up
      up?.pause()
      stream.once('drain', () => up?.resume())
    }
  }

  onResponseEnd(trailers: string[] | undefined): void {
    const up = this.up!
    this.up = undefined
    up.resume()
    // a connection whose request body was not all sent (an early answer) cannot carry another request
    if (this.keepAlive && this.bodyDone) up.pool.release(up)
    else up.abandon()
    const {stream} = this.ex
    if (!stream.destroyed && stream.headersSent && !stream.writableEnded) {
      stream.once('wantTrailers', () => {
        if (!stream.destroyed) stream.sendTrailers(trailers === undefined ? {} : h1Trailers(trailers))
      })
      stream.end()
    }

    this.finish({status: this.status, failed: this.status >= 500})
  }

  onUpstreamError(error: Error, reused: boolean): void {
    this.up = undefined
    if (this.finished) return
    if (this.responseStarted) {
      // the upstream went away in the middle of its body: the client's stream is reset too
      const {stream} = this.ex
      if (!stream.destroyed) stream.close(constants.NGHTTP2_INTERNAL_ERROR)
      this.finish({status: this.status, failed: true})
      return
    }

    // a kept-alive connection the upstream closed as the request went out: sent again once, on a new connection
    const method = this.ex.record.method
    if (reused && !this.resent && !this.ex.hasBody && IDEMPOTENT.has(method) && errorKind(error) === 'reset') {
      this.resent = true
      this.pool.acquire(this)
      return
    }

    this.finish({status: 502, failed: true, error})
  }

  onSwitchingProtocols(socket: Socket): void {
    // never asked for (the request carries no Upgrade): the pool refuses a 101 before it gets here
    socket.destroy()
  }

  /** The client left or its deadline passed: the gateway settles the stream right after, then hears of the end. */
  private cancel(): void {
    const up = this.up
    this.up = undefined
    if (up === undefined) this.pool.cancel(this)
    else up.abandon()
    queueMicrotask(() => this.finish({status: 499, failed: false}))
  }

  private finish(outcome: Omit<AttemptOutcome, 'sentBody'>): void {
    if (this.finished) return
    this.finished = true
    this.done({...outcome, sentBody: this.sentBody})
  }
}

/** Sends an HTTP/2 request to an HTTP/1.1 upstream on `pool`, the HTTP/1 engine's connections to that instance. */
export function forwardPooled(
  ex: H2Exchange,
  pool: ConnectionPool,
  fields: ForwardFields,
  opts: AttemptOptions,
  done: (outcome: AttemptOutcome) => void,
): void {
  new PooledAttempt(ex, pool, fields, opts, done).start()
}
