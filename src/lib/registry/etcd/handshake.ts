import http2 from 'node:http2'

import type {BackendSpec} from '../spec.js'
import type {Pem} from './security.js'

/** How long the first contact waits for some member's HTTP/2 handshake before letting gRPC try them in turn. */
export const HANDSHAKE_TIMEOUT_MS = 1000

/** How a member answered an HTTP/2 handshake: its SETTINGS frame, or the system error of the connection. */
export type HandshakeOutcome = {url: string; ok: true} | {url: string; ok: false; code: string; message: string}

export interface Handshake {
  url: string
  outcome: Promise<HandshakeOutcome>
  cancel: () => void
}

/** Handshakes with every member started before the client library is loaded, for the first choice of a member. */
export interface EarlyHandshakes {
  at: number
  attempts: Handshake[]
  cancel: () => void
}

/** The members' URLs as the client and its member pool name them. */
export function memberUrls(spec: Extract<BackendSpec, {kind: 'etcd'}>): string[] {
  const scheme = spec.tls ? 'https' : 'http'
  return spec.hosts.map((h) => `${scheme}://${h.host.includes(':') ? `[${h.host}]` : h.host}:${h.port}`)
}

/**
 * Starts a handshake with every member at once. openRegistry calls it before it loads the driver and etcd3 (whose
 * gRPC and protobuf modules take a few hundred milliseconds to load): the handshakes' round trips happen meanwhile,
 * and the first call goes to the member that answered as soon as the client is there. Not for TLS: its files are
 * read and checked by the client first.
 */
export function handshakeEarly(
  spec: Extract<BackendSpec, {kind: 'etcd'}>,
  connectTimeoutMs: number,
): EarlyHandshakes | undefined {
  if (spec.tls) return undefined
  const timeoutMs = Math.min(HANDSHAKE_TIMEOUT_MS, connectTimeoutMs)
  const attempts = memberUrls(spec).map((url) => handshake(url, undefined, timeoutMs))
  const cancel = (): void => {
    for (const attempt of attempts) attempt.cancel()
  }

  return {at: Date.now(), attempts, cancel}
}

/** Opens an HTTP/2 connection to one member and waits for its SETTINGS frame, within `timeoutMs`. */
export function handshake(url: string, pem: Pem | undefined, timeoutMs: number): Handshake {
  let cancel = ignore
  const outcome = new Promise<HandshakeOutcome>((resolve) => {
    let settled = false
    const session = http2.connect(url, pem ? {ca: pem.ca, cert: pem.cert, key: pem.key} : {})
    const finish = (result: HandshakeOutcome): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      session.destroy()
      resolve(result)
    }

    cancel = () => finish({url, ok: false, code: 'ECANCELED', message: 'another member answered first'})
    const timer = setTimeout(
      () => finish({url, ok: false, code: 'ETIMEDOUT', message: `no answer within ${timeoutMs} ms`}),
      timeoutMs,
    )
    session.once('remoteSettings', () => finish({url, ok: true}))
    session.on('error', (error: NodeJS.ErrnoException) =>
      finish({url, ok: false, code: error.code ?? 'ERROR', message: error.message}),
    )
    session.once('close', () =>
      finish({url, ok: false, code: 'ECONNRESET', message: 'the member closed the connection'}),
    )
  })
  return {url, outcome, cancel: () => cancel()}
}

/** The cancel of a handshake that has not started. */
function ignore(): void {}
