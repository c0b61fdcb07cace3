import {createServer as createNetServer, type Server, type Socket} from 'node:net'

import {listenAt} from '../metrics/server.js'
import type {HostPort} from '../registry/spec.js'
import type {ProxyEngine} from './engine.js'
import {accessRecordOf, type H2Completion} from './h2/exchange.js'
import {H2Gateway} from './h2/gateway.js'
import {sniffPreface} from './h2/preface.js'
import {PROXY_LIMITS, type ProxyOptions} from './options.js'
import {type CertFiles, loadCertStore} from './tls/certs.js'
import {TlsListener} from './tls/listener.js'
import {redirectServer} from './tls/redirect.js'

/** The listeners beside the HTTP/1 engine: TLS (SNI, ALPN h2 or http/1.1), h2c on the plain port, the redirect. */
export interface ListenerOptions {
  /** The plain listener; none when only TLS is served. */
  plain?: HostPort
  tls?: HostPort & {certs: CertFiles[]}
  /** Detect the h2c preface on the plain listener (HTTP/1 stays served there). */
  h2c?: boolean
  /** The plain listener answers 308 to https:// instead of proxying. */
  redirectHttps?: boolean
  /** Each HTTP/2 request's record as it ends (the access log's hook). */
  onH2Complete?: (record: H2Completion) => void
}

export interface Listeners {
  plainAddress?: string
  tlsAddress?: string
  /** Requests in flight outside the HTTP/1 engine (HTTP/2 streams). */
  readonly active: number
  /** Re-reads the certificate files (SIGHUP); false when they were kept because one failed to load. */
  reload(): Promise<boolean>
  /** Stops accepting and drains the HTTP/2 streams; resolves with the streams cut at the deadline. */
  drain(timeoutMs: number): Promise<number>
  /** Once the engine drained too: closes what is left (handshakes, idle connections the engine does not track). */
  close(): Promise<void>
}

/** Whether `opts` asks for anything beyond the engine's own plain listener. */
export function needsListeners(opts: ListenerOptions): boolean {
  return opts.tls !== undefined || opts.h2c === true || opts.redirectHttps === true || opts.plain === undefined
}

/**
 * Opens the listeners `opts` asks for in front of `proxy`: HTTP/1 connections (plain, or TLS after ALPN chose
 * http/1.1) go to the engine's own server, HTTP/2 ones to one H2Gateway over the engine's route table.
 * Certificates are loaded first: a bad file is a UserError before anything listens.
 */
export async function openListeners(proxy: ProxyEngine, opts: ListenerOptions & ProxyOptions): Promise<Listeners> {
  const store = opts.tls === undefined ? undefined : await loadCertStore(opts.tls.certs)
  const h2 =
    opts.tls !== undefined || opts.h2c === true
      ? new H2Gateway(proxy.table, proxy.metrics, {...opts, onComplete: h2Log(opts)})
      : undefined
  const toEngine = (socket: Socket): void => {
    proxy.server.emit('connection', socket)
  }

  const headersTimeoutMs = opts.limits?.headersTimeoutMs ?? PROXY_LIMITS.headersTimeoutMs
  const servers: Server[] = []
  const sockets = new Set<Socket>()
  const track = (server: Server): Server => {
    // the engine's own server tracks only what it accepted while listening: these are every socket taken here
    server.on('connection', (socket: Socket) => {
      sockets.add(socket)
      socket.once('close', () => sockets.delete(socket))
    })
    servers.push(server)
    return server
  }

  let tls: TlsListener | undefined
  let tlsPort = 0
  let closing: Array<Promise<void>> | undefined
  try {
    if (opts.tls !== undefined && store !== undefined) {
      tls = new TlsListener({
        host: opts.tls.host,
        port: opts.tls.port,
        store,
        handshakeTimeoutMs: headersTimeoutMs,
        log: (line) => opts.log?.(line),
        route: (socket, protocol) => (protocol === 'h2' ? h2!.accept(socket) : toEngine(socket)),
      })
      track(tls.server)
    }

    let plainAddress: string | undefined
    if (opts.plain !== undefined) {
      if (opts.redirectHttps) {
        const server = track(redirectServer(() => tlsPort))
        plainAddress = await listenAt(server, opts.plain.host, opts.plain.port, 'listen', '--listen')
      } else if (opts.h2c && h2 !== undefined) {
        const server = createNetServer({allowHalfOpen: true}, (socket) =>
          sniffPreface(socket, headersTimeoutMs, (kind) => {
            if (kind === 'h2c') {
              h2.accept(socket)
              return
            }

            toEngine(socket)
            // the sniffed bytes wait in the stream's buffer: let the engine read them
            socket.resume()
          }),
        )
        track(server)
        plainAddress = await listenAt(server, opts.plain.host, opts.plain.port, 'listen', '--listen')
      } else {
        plainAddress = await proxy.listen()
      }
    }

    const tlsAddress = tls === undefined ? undefined : await tls.listen()
    if (tls !== undefined) tlsPort = (tls.server.address() as {port: number}).port
    return {
      plainAddress,
      tlsAddress,
      get active() {
        return h2?.active ?? 0
      },
      reload: async () => tls?.reload() ?? false,
      async drain(timeoutMs) {
        closing ??= servers.map(async (s) => closeServer(s))
        return (await h2?.drain(timeoutMs)) ?? 0
      },
      async close() {
        closing ??= servers.map(async (s) => closeServer(s))
        for (const socket of sockets) socket.destroy()
        await Promise.all(closing)
      },
    }
  } catch (error) {
    for (const socket of sockets) socket.destroy()
    await Promise.all(servers.map(async (s) => closeServer(s)))
    throw error
  }
}

/** The HTTP/2 records' consumer: the one given, else the access log's line when there is an access log. */
function h2Log(opts: ListenerOptions & ProxyOptions): ((record: H2Completion) => void) | undefined {
  if (opts.onH2Complete !== undefined) return opts.onH2Complete
  const {accessLog} = opts
  return accessLog === undefined ? undefined : (record) => accessLog.write(accessRecordOf(record))
}

async function closeServer(server: Server): Promise<void> {
  await new Promise<void>((resolve) => {
    if (server.listening) server.close(() => resolve())
    else resolve()
  })
}
