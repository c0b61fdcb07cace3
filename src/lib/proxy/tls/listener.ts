import type {Socket} from 'node:net'
import {createServer, type Server, type TLSSocket} from 'node:tls'

import {errorMessage} from '../../errors.js'
import {listenAt} from '../../metrics/server.js'
import {type CertFiles, contextOptions, type CertStore, loadCertStore} from './certs.js'

export interface TlsListenerOptions {
  host: string
  port: number
  /** The certificate pairs, the first being the default; loaded already (start-up errors are the caller's). */
  store: CertStore
  /** Where a connection goes once ALPN picked its protocol: `h2`, or HTTP/1.1 (also when the client offered none). */
  route(socket: TLSSocket, protocol: 'h2' | 'http/1.1'): void
  /** How long a client has to finish its handshake. */
  handshakeTimeoutMs: number
  log(line: string): void
}

/**
 * TLS termination: TLS 1.2 at least, the certificate picked by SNI among the pairs given (exact names, then
 * wildcards, then the default), ALPN offering h2 then http/1.1. `reload()` re-reads every file and swaps the
 * contexts in: open connections keep the certificate they started with, new handshakes get the new one.
 */
export class TlsListener {
  readonly server: Server
  private store: CertStore

  constructor(private readonly opts: TlsListenerOptions) {
    this.store = opts.store
    const {cert, key} = opts.store.default.pem
    this.server = createServer({
      ...contextOptions(cert, key),
      ALPNProtocols: ['h2', 'http/1.1'],
      allowHalfOpen: true,
      handshakeTimeout: opts.handshakeTimeoutMs,
      SNICallback: (servername, callback) => callback(null, this.store.select(servername).context),
    })
    this.server.on('secureConnection', (socket: TLSSocket) => {
      opts.route(socket, socket.alpnProtocol === 'h2' ? 'h2' : 'http/1.1')
    })
    // a failed handshake (a scanner, a plain-HTTP client, an expired session) costs nothing but its socket
    this.server.on('tlsClientError', (_error: Error, socket: Socket) => socket.destroy())
  }

  async listen(): Promise<string> {
    return listenAt(this.server, this.opts.host, this.opts.port, 'serve TLS', '--tls-listen')
  }

  /** The certificate files, in the order given. */
  get files(): CertFiles[] {
    return this.store.certs.map((c) => c.files)
  }

  /** Re-reads the files; on any failure the certificates in use stay and one line says why. True when swapped. */
  async reload(): Promise<boolean> {
    let store: CertStore
    try {
      store = await loadCertStore(this.files)
    } catch (error) {
      this.opts.log(`TLS reload failed, keeping the certificates in use: ${errorMessage(error)}`)
      return false
    }

    this.store = store
    const {cert, key} = store.default.pem
    this.server.setSecureContext(contextOptions(cert, key))
    const names = store.certs.flatMap((c) => c.names)
    this.opts.log(`TLS certificates reloaded (${store.certs.length}: ${names.join(', ') || 'no names'})`)
    return true
  }
}
