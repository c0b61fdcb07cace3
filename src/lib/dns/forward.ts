import {createSocket} from 'node:dgram'
import {isIP} from 'node:net'

import type {HostPort} from '../registry/spec.js'

/**
 * Sends a query, as received, to the recursor over UDP and resolves with its answer (the query id is kept, so the
 * bytes go back as they came); rejects after `timeoutMs` or on a socket error.
 */
export function forwardQuery(raw: Buffer, recursor: HostPort, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(isIP(recursor.host) === 6 ? 'udp6' : 'udp4')
    const id = raw.readUInt16BE(0)
    const done = (error: Error | undefined, answer?: Buffer): void => {
      clearTimeout(timer)
      socket.close()
      if (error) reject(error)
      else resolve(answer!)
    }

    const timer = setTimeout(
      () => done(new Error(`no answer from ${recursor.host}:${recursor.port} within ${timeoutMs} ms`)),
      timeoutMs,
    )
    socket.on('error', (error) => done(error))
    socket.on('message', (answer) => {
      // a stray datagram with another id is not the answer
      if (answer.length >= 12 && answer.readUInt16BE(0) === id) done(undefined, answer)
    })
    socket.send(raw, recursor.port, recursor.host)
  })
}
