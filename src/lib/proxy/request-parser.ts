import {performance} from 'node:perf_hooks'

import type {ClientConnection} from './client-connection.js'
import {
  kOnBody,
  kOnExecute,
  kOnHeaders,
  kOnHeadersComplete,
  kOnMessageBegin,
  kOnMessageComplete,
  methods,
  type NativeParser,
  type ParseError,
  touchSocket,
} from './http-parser.js'

/** Request parser callbacks: `this` is the parser, its connection in `conn`. */
export interface RequestParser extends NativeParser {
  conn: ClientConnection
}

function onRequestBegin(this: NativeParser): void {
  const conn = (this as RequestParser).conn
  conn.headStart = performance.now()
  conn.headReads = 0
  conn.lineDone = false
  conn.lineTail = ''
}

function onRequestHeaders(this: NativeParser, headers: string[], url: string): void {
  const conn = (this as RequestParser).conn
  for (const h of headers) conn.partialHeaders.push(h)
  conn.partialUrl += url
}

function onRequestHeadersComplete(
  this: NativeParser,
  major: number,
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

  return conn.request(methods[method ?? 0] ?? 'GET', url, major, minor, headers, upgrade, keepAlive)
}

function onRequestBody(this: NativeParser, chunk: Buffer): void {
  ;(this as RequestParser).conn.reading?.requestBody(chunk)
}

function onRequestComplete(this: NativeParser): void {
  const conn = (this as RequestParser).conn
  const ex = conn.reading
  conn.reading = undefined
  // fields handed over after the head are a chunked body's trailers: dropped
  conn.partialHeaders = []
  ex?.requestComplete()
}

/** A read of the consumed socket was parsed. */
function onRequestExecute(this: NativeParser, ret: number | ParseError): void {
  const conn = (this as RequestParser).conn
  touchSocket(conn.socket)
  conn.lastRead = performance.now()
  conn.parsed(ret, undefined)
}

/** Wires a request parser's callbacks to its connection; `consumed`: the parser reads the socket's handle. */
export function bindRequestParser(parser: NativeParser, conn: ClientConnection, consumed: boolean): RequestParser {
  const p = parser as RequestParser
  p.conn = conn
  p[kOnMessageBegin] = onRequestBegin
  p[kOnHeaders] = onRequestHeaders
  p[kOnHeadersComplete] = onRequestHeadersComplete
  p[kOnBody] = onRequestBody
  p[kOnMessageComplete] = onRequestComplete
  if (consumed) p[kOnExecute] = onRequestExecute
  return p
}
