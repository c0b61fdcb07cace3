// the shape of Node's native HTTP parser as the llhttp engine drives it: callback slots by index, and its methods

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
