import type {Socket} from 'node:net'
import {performance} from 'node:perf_hooks'

import {Exchange} from './exchange.js'
import {
  consumeSocket,
  createParser,
  freeParser,
  type ParseError,
  releaseSocket,
  setFlowing,
  socketHandle,
} from './http-parser.js'
import {errorResponse, REQUEST_TIMEOUT} from './replies.js'
import {bindRequestParser, type RequestParser} from './request-parser.js'
import type {ProxyLimits, ProxyServer} from './server.js'

/** `METHOD SP target` and nothing more: an HTTP/0.9 request line. */
const HTTP09 = /^[A-Z]+ \S+\r?$/
const LF = 10

/** What `onHeadersComplete` returns to llhttp to stop parsing here (it reads as an upgrade: no body, then pause). */
const STOP_PARSING = 2

/**
 * One client connection: a native request parser that reads the socket's handle itself (as node:http's server
 * does: no 'data' events, no stream buffers), requests answered in order (a pipelined request waits, with reading
 * stopped, until the one before it is answered). A request the proxy refuses, or a framing error, stops parsing:
 * the requests before it are answered, then the refusal, and the connection closes.
 */
export class ClientConnection {
  readonly parser: RequestParser
  readonly remoteAddress: string
  /** The client is a trusted proxy: its forwarding headers are kept. */
  readonly trusted: boolean
  /** When the head being read began (0: none is); the proxy's timer cuts heads that take too long. */
  headStart = 0
  /** Reads the head being read has spanned, its request line seen whole, and the line's last bytes so far. */
  headReads = 0
  lineDone = false
  lineTail = ''
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
  /** The socket went to an Upgrade tunnel. */
  tunnelled = false
  /** Reading is paused: a request waits in the queue, or a body waits for its upstream. */
  paused = false
  /** The parser reads the socket's handle (else 'data' events feed it). */
  consumed = false
  /** Parsing is over (a refusal or a framing error): the socket reads on (to see the client's end), to no listener. */
  private stopped = false
  /** The answer owed once the queue is served: a framing error found after the requests in it. */
  private failure: {status: number; error: string} | undefined = undefined

  constructor(
    readonly proxy: ProxyServer,
    readonly socket: Socket,
  ) {
    this.remoteAddress = socket.remoteAddress ?? ''
    this.trusted = proxy.trustedProxy?.(this.remoteAddress) ?? false
    socket.setNoDelay(true)
    socket.setTimeout(proxy.limits.idleTimeoutMs)
    const consumable = socketHandle(socket) !== undefined
    this.parser = bindRequestParser(createParser('request', proxy.limits.maxHeaderBytes), this, consumable)
    // the fallback when the handle cannot be consumed; it also keeps the stream flowing, so 'end' is emitted
    socket.on('data', this.onData)
    if (consumable) this.consumed = consumeSocket(this.parser, socket)

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
    if (this.stopped) {
      this.detach()
      return
    }

    if (typeof ret !== 'number') {
      this.parseError(ret, chunk ?? this.parser.getCurrentBuffer())
      return
    }

    const last = this.queue.at(-1)
    if (last?.upgrade === true && last.head === undefined) {
      // the parser stopped after the Upgrade request's head: the rest is the tunnel's, if the upstream says 101
      last.head = (chunk ?? this.parser.getCurrentBuffer()).subarray(ret)
      this.detach()
      this.socket.pause()
      if (this.queue[0] === last) this.proxy.start(last)
      return
    }

    // a read that ended inside a head (rare): see whether it is an HTTP/0.9 request line, which gets no more bytes
    if (this.headStart > 0 && !this.lineDone) this.trackHead(chunk ?? this.parser.getCurrentBuffer(), ret)
  }

  /** Where the head being read starts in `buf`: after the last blank line when it began in this read. */
  private headOffset(buf: Buffer, end: number): number {
    if (this.headReads > 0) return 0
    const blank = buf.subarray(0, end).lastIndexOf('\r\n\r\n')
    return blank === -1 ? 0 : blank + 4
  }

  private trackHead(buf: Buffer, end: number): void {
    const start = this.headOffset(buf, end)
    this.headReads++
    const lf = buf.indexOf(LF, start)
    const stop = lf === -1 || lf >= end ? end : lf
    this.lineTail = (this.lineTail + buf.toString('latin1', Math.max(start, stop - 64), stop)).slice(-64)
    if (stop === end) return
    this.lineDone = true
    if (this.headReads === 1 && HTTP09.test(this.lineTail)) {
      this.fail(400, 'HTTP/0.9 is not served: send an HTTP/1.1 request line (METHOD /path HTTP/1.1)')
    }
  }

  /** The head overflowed inside its request line (414), not in its fields (431). */
  private overflowInLine(buf: Buffer, end: number): boolean {
    if (this.lineDone) return false
    const lf = buf.indexOf(LF, this.headOffset(buf, end))
    return lf === -1 || lf >= end
  }

  /** Stops parsing: reads go back to the socket's stream, which flows again if it was stopped. */
  private detach(): void {
    this.socket.off('data', this.onData)
    if (!this.consumed) return
    this.consumed = false
    releaseSocket(this.parser, this.socket)
  }

  private parseError(error: ParseError, buf: Buffer): void {
    // data after a request that closes the connection: ignored, the connection closes after its response
    if (error.code === 'HPE_CLOSED_CONNECTION') {
      this.stopped = true
      this.detach()
      return
    }

    if (error.code === 'HPE_HEADER_OVERFLOW') {
      if (this.overflowInLine(buf, error.bytesParsed))
        this.fail(414, `request line longer than ${this.proxy.limits.maxHeaderBytes} bytes`)
      else this.fail(431, `request head longer than ${this.proxy.limits.maxHeaderBytes} bytes`)
    } else this.fail(400, `malformed request (${error.code.replace(/^HPE_/, '').toLowerCase()})`)
  }

  /**
   * A framing error: parsing stops. A request whose body it cut is never completed upstream (its upstream
   * connection is dropped) and, unless its response has begun, is answered `status`; the requests read before it are
   * answered first, then `status`, and the connection closes.
   */
  private fail(status: number, error: string): void {
    this.stopped = true
    this.headStart = 0
    this.detach()
    const bad = this.reading
    this.reading = undefined
    if (bad !== undefined) {
      const i = this.queue.indexOf(bad)
      if (i === 0 && bad.responseStarted && !bad.responseDone) {
        bad.clientGone(status)
        this.socket.destroy()
        return
      }

      if (i !== -1) this.queue.splice(i, 1)
      bad.clientGone(status)
    }

    this.failure = {status, error}
    if (this.queue.length === 0) this.answerFailure()
  }

  private answerFailure(): void {
    const {failure} = this
    if (failure === undefined || this.closed) return
    this.failure = undefined
    this.socket.end(errorResponse(failure.status, {error: failure.error}, true), 'latin1')
  }

  /** A request's head arrived; returns what llhttp is to do next (0: go on, STOP_PARSING). */
  request(
    method: string,
    url: string,
    major: number,
    minor: number,
    headers: string[],
    upgrade: boolean,
    keepAlive: boolean,
  ): number {
    // a request parsed after the connection was told to close (pipelined behind a closing one) is dropped
    if (this.stopped || this.socket.writableEnded) return STOP_PARSING
    const ex = new Exchange(this, method, url, major, minor, headers, keepAlive && !upgrade, upgrade)
    this.queue.push(ex)
    if (ex.refusal !== undefined) {
      this.stopped = true
      this.reading = undefined
      if (this.queue.length === 1) this.proxy.start(ex)
      return STOP_PARSING
    }

    this.reading = upgrade ? undefined : ex
    if (this.queue.length === 1) {
      if (!upgrade) this.proxy.start(ex)
    } else this.pause()
    return 0
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
      if (this.failure !== undefined) this.answerFailure()
      else if (this.ended) this.socket.end()
      else this.resume()
      return
    }

    // an Upgrade request starts once the bytes after its head are in hand
    if (next.upgrade && next.head === undefined) return
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
    freeParser(this.parser, this.consumed)
    this.consumed = false
    const active = this.queue[0]
    this.queue = []
    if (active !== undefined && !this.tunnelled) active.clientGone()
  }
}
