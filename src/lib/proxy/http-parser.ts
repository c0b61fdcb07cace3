/**
 * The part of Node's own HTTP/1 parser (llhttp in C++, `HTTPParser` of the `_http_common` builtin, what node:http
 * uses) that the proxy drives directly. Callbacks are set by index on the parser object and called with the parser
 * as `this`; internals.ts loads it, and checks it against these indexes when a proxy starts.
 */
import type {Readable} from 'node:stream'

import {httpCommon, newNativeParser, setReading} from './internals.js'
import type {NativeParser} from './parser-shape.js'

export {consumeSocket, freeParser, releaseSocket, setReading, socketHandle, touchSocket} from './internals.js'

export * from './parser-shape.js'

/** Stops or restarts a socket's reads: below its stream when a parser consumes its handle, else the stream's own. */
export function setFlowing(socket: Readable, consumed: boolean, on: boolean): void {
  if (consumed) setReading(socket, on)
  else if (on) socket.resume()
  else socket.pause()
}

/** Method names by the index the parser reports; filled from the runtime's list by the first `createParser`. */
export const methods: string[] = []

/**
 * A new native parser for requests (`'request'`) or responses (`'response'`); a head (start line and header fields)
 * longer than `maxHeaderSize` bytes fails with HPE_HEADER_OVERFLOW (0: node's limit, 16 KiB by default).
 * Clients are parsed strictly; upstreams may end lines with a bare LF (legacy servers, busybox CGI), as nginx allows.
 */
export function createParser(type: 'request' | 'response', maxHeaderSize = 0): NativeParser {
  if (methods.length === 0) methods.push(...httpCommon().methods)
  return newNativeParser(type, maxHeaderSize, type === 'response')
}
