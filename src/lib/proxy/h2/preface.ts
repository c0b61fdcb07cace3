import type {Socket} from 'node:net'

/** What an HTTP/2 client with prior knowledge sends first (RFC 9113 section 3.4). */
export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')

/**
 * Reads a plain connection's first bytes until they tell an h2c preface from an HTTP/1 request (most requests
 * differ at the first byte, POST and PUT at the second), gives the bytes back to the socket and calls `then`.
 * A client silent for `timeoutMs`, or one that ends before saying, is closed.
 */
export function sniffPreface(socket: Socket, timeoutMs: number, then: (kind: 'h2c' | 'http/1.1') => void): void {
  let seen: Buffer = Buffer.alloc(0)
  const timer = setTimeout(() => socket.destroy(), timeoutMs)
  const stop = (): void => {
    clearTimeout(timer)
    socket.off('data', onData)
    socket.off('end', onEnd)
    socket.off('error', onError)
  }

  const onData = (chunk: Buffer): void => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk])
    const n = Math.min(seen.length, PREFACE.length)
    const matches = seen.subarray(0, n).equals(PREFACE.subarray(0, n))
    if (matches && seen.length < PREFACE.length) return
    stop()
    socket.pause()
    socket.unshift(seen)
    then(matches ? 'h2c' : 'http/1.1')
  }

  const onEnd = (): void => {
    stop()
    socket.destroy()
  }

  const onError = (): void => {
    stop()
    socket.destroy()
  }

  socket.on('data', onData)
  socket.once('end', onEnd)
  socket.once('error', onError)
}
