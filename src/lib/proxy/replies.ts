import {STATUS_CODES} from 'node:http'
import type {Socket} from 'node:net'

/** `HTTP/1.1 <code> <reason>\r\n` for every code node knows, built once. */
export const STATUS_LINES: string[] = []
for (const [code, reason] of Object.entries(STATUS_CODES)) STATUS_LINES[Number(code)] = `HTTP/1.1 ${code} ${reason}\r\n`

export const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n'
export const REQUEST_TIMEOUT = 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n'
export const LAST_CHUNK = '0\r\n\r\n'

/** The status line for `status`, with the upstream's own reason phrase when it differs from node's. */
export function statusLine(status: number, reason: string): string {
  const line = STATUS_LINES[status]
  return line === undefined || STATUS_CODES[status] !== reason ? `HTTP/1.1 ${status} ${reason}\r\n` : line
}

/**
 * Seconds a client is asked to wait (Retry-After) when a service has no healthy instance: the first ejection lasts
 * 1 s and a registry change reaches the table within a second, so 2 s is when a retry can first find one.
 */
export const RETRY_AFTER_SECONDS = 2

/** The header lines a 503 from the proxy carries. */
export const RETRY_AFTER = `retry-after: ${RETRY_AFTER_SECONDS}\r\n`

/**
 * A whole answer from the proxy itself: a JSON body naming the problem; `close` adds Connection: close; `extra`
 * is more header lines, each ending in CRLF.
 */
export function errorResponse(
  status: number,
  body: Record<string, unknown>,
  close: boolean,
  http10 = false,
  extra = '',
): string {
  const text = JSON.stringify(body) + '\n'
  return (
    (STATUS_LINES[status] ?? `HTTP/1.1 ${status} Error\r\n`) +
    extra +
    'content-type: application/json\r\ncontent-length: ' +
    Buffer.byteLength(text) +
    (close ? '\r\nconnection: close\r\n\r\n' : http10 ? '\r\nconnection: keep-alive\r\n\r\n' : '\r\n\r\n') +
    text
  )
}

/** A whole HTTP/1.1 answer written to a socket no request is being served on, then the socket is closed. */
export function rawReply(socket: Socket, status: number, body: Record<string, unknown>): void {
  socket.end(errorResponse(status, body, true), 'latin1')
}
