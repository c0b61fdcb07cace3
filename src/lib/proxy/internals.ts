/**
 * Every use of Node's undocumented internals by the proxy lives here: the `_http_common` builtin's `HTTPParser`
 * (llhttp, what node:http itself drives), `parser.consume(socket._handle)` / `unconsume()`, the libuv handle's
 * `reading` / `readStart()` / `readStop()`, and `socket._unrefTimer()`. Nothing is touched when this module loads;
 * `checkInternals()` tries each one for real once, when a proxy starts, so a Node release that moves them makes
 * the proxy fall back to its engine on public APIs instead of failing.
 */
import {createRequire} from 'node:module'
import {connect, createServer, type Server, type Socket} from 'node:net'

import {
  kOnBody,
  kOnExecute,
  kOnHeaders,
  kOnHeadersComplete,
  kOnMessageBegin,
  kOnMessageComplete,
  type NativeParser,
  type ParseError,
  type StreamHandle,
} from './parser-shape.js'

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

/** The socket internals a consumed socket needs (as node:http uses them). */
interface SocketInternals {
  _handle: StreamHandle | null
  /** Restarts the socket's idle timer (a consumed socket's reads do not). */
  _unrefTimer(): void
}

let common: HttpCommon | undefined

/** The `_http_common` builtin, loaded on first use. */
export function httpCommon(): HttpCommon {
  common ??= createRequire(import.meta.url)('_http_common') as HttpCommon
  return common
}

/**
 * A new native parser for requests or responses (`maxHeaderSize` 0: node's limit); `bareLF` accepts a bare LF as a
 * line end where this Node.js has the flag (elsewhere such messages fail to parse).
 */
export function newNativeParser(type: 'request' | 'response', maxHeaderSize: number, bareLF = false): NativeParser {
  const {HTTPParser} = httpCommon()
  const parser = new HTTPParser()
  const lenient = bareLF ? (HTTPParser.kLenientOptionalCRBeforeLF ?? 0) : 0
  parser.initialize(type === 'request' ? HTTPParser.REQUEST : HTTPParser.RESPONSE, {}, maxHeaderSize, lenient)
  return parser
}

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

/** Has `parser` read `socket`'s handle natively (no 'data' events); false when the socket has no handle. */
export function consumeSocket(parser: NativeParser, socket: object): boolean {
  const handle = socketHandle(socket)
  if (handle === undefined) return false
  parser.consume(handle)
  return true
}

/** Gives a consumed socket's reads back to its stream. */
export function releaseSocket(parser: NativeParser, socket: object): void {
  parser.unconsume()
  setReading(socket, true)
}

// generous: the check runs while the proxy starts, on machines that may be busy
const CHECK_TIMEOUT_MS = 10_000

let checked: Promise<string | undefined> | undefined

/** Undefined when every internal the llhttp engine uses behaves as expected, else what did not (one phrase). */
export async function checkInternals(): Promise<string | undefined> {
  checked ??= runChecks().catch((error: unknown) => (error instanceof Error ? error.message : String(error)))
  return checked
}

async function runChecks(): Promise<string | undefined> {
  const {HTTPParser, methods} = httpCommon()
  const slots = [
    HTTPParser.kOnMessageBegin === kOnMessageBegin,
    HTTPParser.kOnHeaders === kOnHeaders,
    HTTPParser.kOnHeadersComplete === kOnHeadersComplete,
    HTTPParser.kOnBody === kOnBody,
    HTTPParser.kOnMessageComplete === kOnMessageComplete,
    HTTPParser.kOnExecute === kOnExecute,
  ]
  if (slots.includes(false)) return "HTTPParser's callback slots moved"
  const request = 'POST /x?y=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi'
  const seen = parseOnce(newNativeParser('request', 0), request, methods)
  if (seen !== 'POST /x?y=1 Host:a Content-Length:2 body:hi end') return `HTTPParser parsed a request as "${seen}"`
  const response = parseOnce(newNativeParser('response', 0), 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz', methods)
  if (response !== '200 OK Content-Length:1 body:z end') return `HTTPParser parsed a response as "${response}"`
  return checkConsume(request)
}

/** Parses `text` in one `execute` and describes what the callbacks saw. */
function parseOnce(parser: NativeParser, text: string, methods: readonly string[]): string {
  const seen: string[] = []
  parser[kOnHeadersComplete] = (_maj, _min, headers, method, url, status, reason) => {
    seen.push(status ? `${status} ${reason}` : `${methods[method ?? -1]} ${url}`)
    const fields = headers ?? []
    for (let i = 0; i + 1 < fields.length; i += 2) seen.push(`${fields[i]}:${fields[i + 1]}`)
    return 0
  }

  parser[kOnBody] = (chunk) => seen.push(`body:${chunk.toString('latin1')}`)
  parser[kOnMessageComplete] = () => seen.push('end')
  const ret = parser.execute(Buffer.from(text, 'latin1'))
  parser.close()
  if (typeof ret !== 'number' || ret !== text.length) return `execute returned ${String(ret)}`
  return seen.join(' ')
}

/**
 * A loopback connection whose server side a parser consumes: the request must reach the parser through
 * `kOnExecute`, with the handle's read switches and the idle timer working as node:http uses them.
 */
async function checkConsume(request: string): Promise<string | undefined> {
  const server = createServer()
  const sockets: Socket[] = []
  try {
    const socket = await loopbackPair(server, sockets).catch(() => undefined)
    // a machine that gives no loopback connection says nothing about Node's internals: the parses above passed
    if (socket === undefined) return undefined
    const handle = socketHandle(socket)
    if (handle === undefined || typeof handle.readStart !== 'function' || typeof handle.readStop !== 'function')
      return 'a socket has no _handle with readStart/readStop'
    if (typeof (socket as unknown as SocketInternals)._unrefTimer !== 'function') return 'socket._unrefTimer is gone'
    const parser = newNativeParser('request', 0)
    const parsed = new Promise<string | undefined>((resolve) => {
      let head = false
      parser[kOnHeadersComplete] = () => {
        head = true
        return 0
      }

      parser[kOnExecute] = (ret: number | ParseError) => {
        touchSocket(socket)
        resolve(typeof ret === 'number' && head ? undefined : `a consumed read returned ${String(ret)}`)
      }
    })
    if (!consumeSocket(parser, socket)) return 'a socket has no _handle to consume'
    setReading(socket, false)
    setReading(socket, true)
    sockets[0]?.write(request)
    const problem = await withTimeout(parsed, 'a consumed socket delivered no read to the parser')
    releaseSocket(parser, socket)
    return problem
  } finally {
    for (const socket of sockets) socket.destroy()
    server.close()
  }
}

/** The server side of a new loopback connection; `sockets` gets the client side, then the server side. */
async function loopbackPair(server: Server, sockets: Socket[]): Promise<Socket> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    // exclusive: in a node:cluster worker (svc proxy --workers) the port must not be shared with the other workers
    server.listen({port: 0, host: '127.0.0.1', exclusive: true}, () => resolve())
  })
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no loopback address')
  const accepted = new Promise<Socket>((resolve) => {
    server.once('connection', resolve)
  })
  const client = connect(address.port, '127.0.0.1')
  sockets.push(client)
  client.on('error', () => {})
  const socket = await withTimeout(accepted, 'no loopback connection')
  sockets.push(socket)
  return socket
}

async function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}
