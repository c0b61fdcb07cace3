import type {IncomingMessage, ServerResponse} from 'node:http'
import type {Socket} from 'node:net'
import type {Duplex} from 'node:stream'

import {BAD_REQUEST, CLIENT_ERRORS} from './node-http-support.js'

/** What node:http hands its 'clientError' listeners (documented there). */
export type ClientError = NodeJS.ErrnoException & {bytesParsed?: number; rawPacket?: Buffer}

const URI_TOO_LONG = 'HTTP/1.1 414 URI Too Long\r\nConnection: close\r\nContent-Length: 0\r\n\r\n'
const LF = 10
/** `METHOD SP`: how a request line starts. */
const LINE_START = /^[A-Z]+ /

/**
 * node:http's parse errors answered as the llhttp engine answers them: after the responses owed to the requests
 * read before the error (never in the middle of one), and not at all after a refusal that closes the connection
 * (the bytes after a refused request are never parsed there).
 */
export class ClientErrors {
  private readonly last = new WeakMap<Duplex, Served>()
  private readonly closing = new WeakSet<ServerResponse>()
  private readonly answered = new WeakSet<Duplex>()

  /** A request was read: an error found after it waits for its response; `cut` drops it if the error is in its body. */
  track(req: IncomingMessage, res: ServerResponse, cut: (status: number) => void = () => {}): void {
    this.last.set(req.socket, {req, res, cut})
  }

  /** `res` closes its connection: what the parser finds after its request is not answered. */
  closes(res: ServerResponse): void {
    this.closing.add(res)
  }

  answer(error: ClientError, socket: Duplex): void {
    // a connection that never sent a byte is closed without an answer
    const silent = error.code === 'ERR_HTTP_REQUEST_TIMEOUT' && (socket as Socket).bytesRead === 0
    if (silent || !socket.writable) {
      socket.destroy()
      return
    }

    if (this.answered.has(socket)) return
    this.answered.add(socket)
    const reply = replyTo(error)
    const last = this.last.get(socket)
    if (last === undefined) {
      socket.end(reply)
      return
    }

    const {req, res} = last
    if (this.closing.has(res)) {
      if (res.writableFinished) socket.end()
      return
    }

    if (!req.complete) {
      // the error is in this request's body: it never completes upstream, and is answered here unless its answer began
      last.cut(statusOf(reply))
      if (res.headersSent && !res.writableFinished) socket.destroy()
      else socket.end(reply)
      return
    }

    if (res.writableFinished) socket.end(reply)
    else res.once('finish', () => socket.end(reply))
  }
}

/** A request read on a connection, its response, and how to drop it. */
interface Served {
  req: IncomingMessage
  res: ServerResponse
  cut: (status: number) => void
}

/** The status of a canned reply (`HTTP/1.1 NNN ...`). */
function statusOf(reply: string): number {
  return Number(reply.slice(9, 12))
}

function replyTo(error: ClientError): string {
  if (error.code === 'HPE_HEADER_OVERFLOW' && overflowInLine(error.rawPacket, error.bytesParsed)) return URI_TOO_LONG
  return CLIENT_ERRORS[error.code ?? ''] ?? BAD_REQUEST
}

/**
 * The head overflowed inside its request line (414), not in its fields (431): the read it overflowed in holds the
 * line's start and no line end before the overflow. A line that began in an earlier read is judged a 431.
 */
function overflowInLine(packet: Buffer | undefined, parsed: number | undefined): boolean {
  if (packet === undefined) return false
  const end = Math.min(parsed ?? packet.length, packet.length)
  const blank = packet.subarray(0, end).lastIndexOf('\r\n\r\n')
  const start = blank === -1 ? 0 : blank + 4
  if (!LINE_START.test(packet.toString('latin1', start, Math.min(end, start + 24)))) return false
  const lf = packet.indexOf(LF, start)
  return lf === -1 || lf >= end
}
