// the node:http engine's pieces that need none of its state: its pools, canned answers and header-block codecs
import {Agent, type ClientRequest, type ServerResponse, STATUS_CODES} from 'node:http'
import type {Socket} from 'node:net'
import type {Duplex} from 'node:stream'

import {RETRY_AFTER, RETRY_AFTER_SECONDS} from './replies.js'
import type {UpstreamPool} from './routes.js'
import {errorKind} from './server.js'

export const BAD_REQUEST = 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n'
export const CLIENT_ERRORS: Record<string, string> = {
  HPE_HEADER_OVERFLOW: 'HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n',
  ERR_HTTP_REQUEST_TIMEOUT: 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n',
}

/** One upstream instance's keep-alive connections: an http.Agent; `close` waits for the requests on it. */
export class AgentPool implements UpstreamPool {
  readonly agent: Agent
  active = 0
  /** The instance left the table: its pool is closing. */
  closed = false
  private closing: (() => void) | undefined

  constructor(max: number) {
    this.agent = new Agent({keepAlive: true, maxSockets: max})
  }

  done(): void {
    this.active--
    if (this.active === 0) this.closing?.()
  }

  async close(): Promise<void> {
    this.closed = true
    if (this.active > 0)
      await new Promise<void>((resolve) => {
        this.closing = resolve
      })
    this.agent.destroy()
  }

  async destroy(): Promise<void> {
    this.closed = true
    this.agent.destroy()
  }
}

/** The header lines of a block (`name: value\r\n` each) as a flat [name, value, ...] list. */
export function fieldsOf(block: string): string[] {
  const out: string[] = []
  for (const line of block.split('\r\n')) {
    const colon = line.indexOf(': ')
    if (colon > 0) out.push(line.slice(0, colon), line.slice(colon + 2))
  }

  return out
}

export function problem(message: string, code: string): Error {
  return Object.assign(new Error(message), {code})
}

/** Fails `up` with ECONNECTTIMEOUT when its new connection is not up within `ms` (a reused one is left alone). */
export function connectDeadline(up: ClientRequest, ms: number): void {
  up.on('socket', (socket: Socket) => {
    if (!socket.connecting) return
    const timer = setTimeout(() => up.destroy(problem(`connect timed out after ${ms} ms`, 'ECONNECTTIMEOUT')), ms)
    socket.once('connect', () => clearTimeout(timer))
    socket.once('close', () => clearTimeout(timer))
  })
}

/** The proxy's answer to a failed upstream attempt, as the llhttp engine gives it: 504 on a timeout, else 502. */
export function failureAnswer(error: Error): {status: number; error: string} {
  const status = errorKind(error) === 'timeout' ? 504 : 502
  return {status, error: `${status === 504 ? 'upstream timed out' : 'upstream failed'}: ${error.message}`}
}

export function pairsOf(block: string): Array<[string, string]> {
  const fields = fieldsOf(block)
  const out: Array<[string, string]> = []
  for (let i = 0; i + 1 < fields.length; i += 2) out.push([fields[i]!, fields[i + 1]!])
  return out
}

/** The header lines of a block as an object (early hints take no list). */
export function headerObject(block: string): Record<string, string> {
  // writeEarlyHints looks for a lower-case `link`
  return Object.fromEntries(pairsOf(block).map(([name, value]) => [name.toLowerCase(), value]))
}

/** The proxy's own JSON answer (404, 502, ...); a 503 says when to retry. Returns the body's length in bytes. */
export function writeJson(res: ServerResponse, status: number, body: Record<string, unknown>, close: boolean): number {
  const text = JSON.stringify(body) + '\n'
  const fields = ['content-type', 'application/json', 'content-length', String(Buffer.byteLength(text))]
  if (status === 503) fields.push('retry-after', String(RETRY_AFTER_SECONDS))
  if (close) fields.push('connection', 'close')
  res.writeHead(status, STATUS_CODES[status] ?? 'Error', fields)
  res.end(text)
  return Buffer.byteLength(text)
}

/** A whole HTTP/1.1 response written to a raw socket (upgrade and CONNECT paths), then the socket is closed. */
export function rawReply(socket: Duplex, status: number, body: Record<string, unknown>): void {
  const text = JSON.stringify(body) + '\n'
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n${status === 503 ? RETRY_AFTER : ''}content-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
  )
}
