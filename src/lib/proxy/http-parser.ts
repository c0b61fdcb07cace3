/**
 * The part of Node's own HTTP/1 parser (llhttp in C++, `HTTPParser` of the `_http_common` builtin, what node:http
 * uses) that the proxy drives directly. Callbacks are set by index on the parser object and called with the parser
 * as `this`; the indexes are checked against the runtime's when this module loads.
 */
import {createRequire} from 'node:module'
import type {Readable} from 'node:stream'

export const kOnMessageBegin = 0
export const kOnHeaders = 1
export const kOnHeadersComplete = 2
export const kOnBody = 3
export const kOnMessageComplete = 4
export const kOnExecute = 5

/** What `execute` returns on a parse error: llhttp's code (HPE_*) and where it stopped. */
export interface ParseError extends Error {
  code: string
  bytesParsed: number
}

export type OnHeadersComplete = (
  this: NativeParser,
  versionMajor: number,
  versionMinor: number,
  headers: string[] | undefined,
  method: number | undefined,
  url: string | undefined,
  statusCode: number | undefined,
  statusMessage: string | undefined,
  upgrade: boolean,
  shouldKeepAlive: boolean,
) => number

export interface NativeParser {
  /** The first byte of a message was read. */
  [kOnMessageBegin]: ((this: NativeParser) => void) | undefined
  [kOnHeaders]: ((this: NativeParser, headers: string[], url: string) => void) | undefined
  /** Returns 1 to parse the message as bodiless (a response to HEAD), else 0. */
  [kOnHeadersComplete]: OnHeadersComplete | undefined
  /** A copy of one piece of the body (chunked framing already removed). */
  [kOnBody]: ((this: NativeParser, chunk: Buffer) => void) | undefined
  [kOnMessageComplete]: ((this: NativeParser) => void) | undefined
  /** After each read of a consumed stream was parsed: bytes parsed, or the error. */
  [kOnExecute]: ((this: NativeParser, ret: number | ParseError) => void) | undefined
  initialize(type: number, resource: object, maxHeaderSize?: number, lenient?: number): void
  /** Bytes parsed, or the error; at an Upgrade (or CONNECT) request it stops after the head. */
  execute(data: Buffer): number | ParseError
  /** Signals the end of input (a response delimited by the connection closing ends here). */
  finish(): number | ParseError | undefined
  close(): void
  /**
   * Reads a socket's handle natively, as node:http's server does: each read goes to `execute` in C++, then to
   * `kOnExecute`; the socket emits no 'data' (end of stream and errors still reach it).
   */
  consume(handle: object): void
  /** Gives the handle's reads back to its socket. */
  unconsume(): void
  /** A copy of the read being parsed (in `kOnExecute` of a consumed stream). */
  getCurrentBuffer(): Buffer
}

/** The libuv stream under a net socket: what `consume` reads, and reading paused below the socket's stream. */
export interface StreamHandle {
  reading: boolean
  readStart(): number
  readStop(): number
}

/** The socket internals a consumed socket needs (as node:http uses them). */
interface SocketInternals {
  _handle: StreamHandle | null
  /** Restarts the socket's idle timer (a consumed socket's reads do not). */
  _unrefTimer(): void
}

/** The native handle of a connected socket, or undefined once it is closed. */
export function socketHandle(socket: object): StreamHandle | undefined {
  return (socket as SocketInternals)._handle ?? undefined
}

/** Restarts `socket`'s idle timer, as a read on an unconsumed socket does. */
export function touchSocket(socket: object): void {
  ;(socket as SocketInternals)._unrefTimer()
}

/** Stops (false) or restarts (true) reading from a consumed socket's handle. */
export function setReading(socket: object, on: boolean): void {
  const handle = socketHandle(socket)
  if (handle === undefined || handle.reading === on) return
  handle.reading = on
  if (on) handle.readStart()
  else handle.readStop()
}

/** Stops or restarts a socket's reads: below its stream when a parser consumes its handle, else the stream's own. */
export function setFlowing(socket: Readable, consumed: boolean, on: boolean): void {
  if (consumed) setReading(socket, on)
  else if (on) socket.resume()
  else socket.pause()
}

interface HttpCommon {
  HTTPParser: {
    new (): NativeParser
    REQUEST: number
    RESPONSE: number
    /** llhttp's leniency that accepts a bare LF as a line end (RFC 9112 section 2.2 allows it of a recipient). */
    kLenientOptionalCRBeforeLF?: number
    kOnMessageBegin: number
    kOnHeaders: number
    kOnHeadersComplete: number
    kOnBody: number
    kOnMessageComplete: number
    kOnExecute: number
  }
  /** Method names by the index the parser reports. */
  methods: string[]
}

const common = createRequire(import.meta.url)('_http_common') as HttpCommon
const {HTTPParser} = common
if (
  HTTPParser.kOnMessageBegin !== kOnMessageBegin ||
  HTTPParser.kOnHeaders !== kOnHeaders ||
  HTTPParser.kOnHeadersComplete !== kOnHeadersComplete ||
  HTTPParser.kOnBody !== kOnBody ||
  HTTPParser.kOnMessageComplete !== kOnMessageComplete ||
  HTTPParser.kOnExecute !== kOnExecute
) {
  throw new Error("this Node.js version's HTTP parser has different callback slots; svc proxy needs Node.js 20")
}

export const methods: readonly string[] = common.methods

/**
 * A new native parser for requests (`'request'`) or responses (`'response'`); a head (start line and header fields)
 * longer than `maxHeaderSize` bytes fails with HPE_HEADER_OVERFLOW (0: node's limit, 16 KiB by default).
 */
export function createParser(type: 'request' | 'response', maxHeaderSize = 0): NativeParser {
  const parser = new HTTPParser()
  // clients are parsed strictly; upstreams may end lines with a bare LF (legacy servers, busybox CGI), as nginx allows
  const lenient = type === 'response' ? BARE_LF : 0
  parser.initialize(type === 'request' ? HTTPParser.REQUEST : HTTPParser.RESPONSE, {}, maxHeaderSize, lenient)
  return parser
}

/** The lenient flag for bare LF line ends; 0 where this Node.js has no such flag (such responses then get 502). */
const BARE_LF = HTTPParser.kLenientOptionalCRBeforeLF ?? 0

/**
 * Releases a parser's native half once its connection closed, as node:http's freeParser does: the handle is given
 * back, and the C++ object is deleted after the stack unwinds (never from inside one of its own callbacks). A parser
 * never closed stays alive with everything its callbacks reach: about 2 KB per connection.
 */
export function freeParser(parser: NativeParser, consumed: boolean): void {
  if (consumed) parser.unconsume()
  for (const slot of [
    kOnMessageBegin,
    kOnHeaders,
    kOnHeadersComplete,
    kOnBody,
    kOnMessageComplete,
    kOnExecute,
  ] as const)
    parser[slot] = undefined
  setImmediate(closeParser, parser)
}

function closeParser(parser: NativeParser): void {
  parser.close()
}
