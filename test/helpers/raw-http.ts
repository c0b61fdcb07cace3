import {connect} from 'node:net'
import {setTimeout as sleep} from 'node:timers/promises'

/** One HTTP/1.x response cut out of raw bytes. */
export interface RawResponse {
  status: number
  /** Lower-cased names. */
  headers: Record<string, string>
  body: string
}

export interface RawConversation {
  raw: string
  responses: RawResponse[]
  /** The server closed the connection (else the client gave up after a quiet spell or the time limit). */
  closed: boolean
  /** From connecting to the close (or giving up). */
  ms: number
}

export interface RawOptions {
  /** Pause between the writes of `parts`. */
  gapMs?: number
  /** Give up this long after the last byte read, once a response is in. */
  quietMs?: number
  /** Give up after this long whatever happens. */
  limitMs?: number
}

/**
 * Writes `parts` to `address` as raw bytes (latin1), one write each, and reads until the server closes, or the
 * conversation goes quiet after a response, or the time limit: every wait bounded.
 */
export async function rawExchange(
  address: string,
  parts: readonly string[],
  {gapMs = 50, quietMs = 400, limitMs = 4000}: RawOptions = {},
): Promise<RawConversation> {
  const [host, port] = address.split(':')
  const started = Date.now()
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    let closed = false
    let quiet: NodeJS.Timeout | undefined
    const socket = connect(Number(port), host!, async () => {
      for (const [i, part] of parts.entries()) {
        if (socket.destroyed) return
        if (i > 0) await sleep(gapMs)
        socket.write(Buffer.from(part, 'latin1'))
      }
    })
    const limit = setTimeout(() => socket.destroy(), limitMs)
    socket.on('data', (d: Buffer) => {
      chunks.push(d)
      clearTimeout(quiet)
      quiet = setTimeout(() => socket.destroy(), quietMs)
    })
    socket.on('end', () => {
      closed = true
    })
    socket.on('error', () => {
      closed = true
    })
    socket.on('close', () => {
      clearTimeout(limit)
      clearTimeout(quiet)
      const raw = Buffer.concat(chunks).toString('latin1')
      resolve({raw, responses: parseResponses(raw), closed, ms: Date.now() - started})
    })
  })
}

/** The responses in `raw`, in order: Content-Length, chunked, or to the end; a 101 takes the rest as its body. */
export function parseResponses(raw: string): RawResponse[] {
  const out: RawResponse[] = []
  let pos = 0
  while (pos < raw.length) {
    const line = /^HTTP\/1\.[01] (\d{3})[^\n]*\n/.exec(raw.slice(pos))
    if (line === null) break
    const status = Number(line[1])
    let end = raw.indexOf('\n\n', pos)
    const crlf = raw.indexOf('\r\n\r\n', pos)
    if (crlf !== -1 && (end === -1 || crlf < end)) end = crlf + 2
    if (end === -1) break
    const headers: Record<string, string> = {}
    for (const field of raw.slice(pos + line[0].length, end).split(/\r?\n/)) {
      const colon = field.indexOf(':')
      if (colon > 0) headers[field.slice(0, colon).trim().toLowerCase()] = field.slice(colon + 1).trim()
    }

    pos = end + 2
    if (status === 101) {
      out.push({status, headers, body: raw.slice(pos)})
      break
    }

    let body = ''
    if (status >= 200 && status !== 204 && status !== 304) {
      if (headers['transfer-encoding'] === 'chunked') {
        ;({body, pos} = readChunked(raw, pos))
      } else if (headers['content-length'] === undefined) {
        body = raw.slice(pos)
        pos = raw.length
      } else {
        const length = Number(headers['content-length'])
        body = raw.slice(pos, pos + length)
        pos += length
      }
    }

    out.push({status, headers, body})
  }

  return out
}

/** A chunked body from `pos`: its data, and where the message ends (after its trailer section). */
function readChunked(raw: string, from: number): {body: string; pos: number} {
  let body = ''
  let pos = from
  for (;;) {
    const lf = raw.indexOf('\r\n', pos)
    if (lf === -1) return {body, pos: raw.length}
    const size = Number.parseInt(raw.slice(pos, lf), 16)
    pos = lf + 2
    if (!(size > 0)) {
      if (raw.startsWith('\r\n', pos)) return {body, pos: pos + 2}
      const end = raw.indexOf('\r\n\r\n', pos)
      return {body, pos: end === -1 ? raw.length : end + 4}
    }

    body += raw.slice(pos, pos + size)
    pos += size + 2
  }
}
