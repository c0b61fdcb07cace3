import {createServer, type IncomingMessage, type ServerResponse} from 'node:http'
import type {AddressInfo, Server} from 'node:net'

import {errorMessage, UserError} from '../errors.js'
import {formatHosts, type HostPort, parseHosts} from '../registry/spec.js'
import type {Exposition} from './registry.js'

export interface MetricsServer {
  /** Where it listens, as host:port with the port actually bound (IPv6 in brackets). */
  address: string
  /** The scrape URL, http://host:port/metrics. */
  url: string
  /** Stops listening and drops open connections. */
  close(): Promise<void>
}

const USAGE_HINT = 'write it as HOST:PORT, e.g. 127.0.0.1:9100, or :9100 for every interface'

/** Parses a listen address such as --metrics: `host:port`, `[v6]:port`, or `:port` for every interface. */
export function parseHostPort(value: string, flag = '--metrics'): HostPort {
  const raw = value.trim()
  const all = /^:(\d+)$/.exec(raw)
  const text = all ? `0.0.0.0:${all[1]}` : raw
  // parseHosts would take a bare host, or a list, with a default port; a listen address needs exactly one port
  if (raw.includes(',') || !/^(\[[^\]]+\]|[^:]+):[^:]*$/.test(text)) {
    throw new UserError(`invalid ${flag} address "${value}"`, USAGE_HINT)
  }

  try {
    const [hostPort] = parseHosts(text, 0, raw)
    if (hostPort === undefined) throw new UserError('no address')
    return hostPort
  } catch (error) {
    const reason = errorMessage(error).replace(/ in backend ".*"$/, '')
    throw new UserError(`invalid ${flag} address "${value}": ${reason}`, USAGE_HINT)
  }
}

/** What /healthz answers: 200 with `ok`, or 503 with `detail` (one line saying what is down). */
export type Health = {ok: true} | {ok: false; detail: string}

export interface ServeOptions {
  /** More GET endpoints, by path: each returns a JSON body, or a promise of one (e.g. the proxy's /routes). */
  json?: Record<string, () => unknown>
  /** Decides /healthz; always ok when unset. */
  health?: () => Promise<Health>
  /** GET endpoints that answer an HTML page, by path (e.g. the proxy's route page on /). */
  html?: Record<string, () => string>
  /** What the listener is, for errors: "serve metrics" by default. */
  what?: string
  /** The flag that sets the address, for hints: --metrics by default. */
  flag?: string
}

/**
 * Serves GET /metrics (rendered per scrape), GET /healthz (`opts.health`), `opts.json` and `opts.html`; another method on one of
 * those paths gets 405 with `Allow: GET, HEAD`, any other path 404.
 */
export async function serveMetrics(
  exposition: Exposition,
  host: string,
  port: number,
  opts: ServeOptions = {},
): Promise<MetricsServer> {
  const server = createServer((req, res) => handle(req, res, exposition, opts))
  server.keepAliveTimeout = 5000

  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      server.close()
      reject(listenError(error, host, port, opts.what, opts.flag))
    }

    server.once('error', onError)
    server.listen(port, host, () => {
      server.off('error', onError)
      resolve()
    })
  })

  const bound = server.address() as AddressInfo
  const address = formatHosts([{host: bound.address, port: bound.port}])
  return {
    address,
    url: `http://${address}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

function handle(req: IncomingMessage, res: ServerResponse, exposition: Exposition, opts: ServeOptions): void {
  const {json = {}, html = {}} = opts
  const path = (req.url ?? '/').split('?', 1)[0] ?? '/'
  const method = req.method ?? 'GET'
  const known = path === '/metrics' || path === '/healthz' || Object.hasOwn(json, path) || Object.hasOwn(html, path)
  if (known && method !== 'GET' && method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD')
    reply(res, 405, `method ${method} not allowed on ${path}: use GET or HEAD\n`, method)
    return
  }

  const extra = Object.hasOwn(json, path) ? json[path] : undefined
  if (extra) {
    Promise.resolve()
      .then(extra)
      .then(
        (body) => reply(res, 200, JSON.stringify(body, null, 2) + '\n', method, 'application/json'),
        (error: unknown) => reply(res, 500, `cannot answer ${path}: ${errorMessage(error)}\n`, method),
      )
    return
  }

  const page = Object.hasOwn(html, path) ? html[path] : undefined
  if (page) {
    reply(res, 200, page(), method, 'text/html; charset=utf-8')
    return
  }

  if (path === '/metrics') {
    exposition.metrics().then(
      (body) => reply(res, 200, body, method, exposition.contentType),
      (error: unknown) => reply(res, 500, `cannot render metrics: ${errorMessage(error)}\n`, method),
    )
    return
  }

  if (path === '/healthz') {
    const health = opts.health?.() ?? Promise.resolve<Health>({ok: true})
    health.then(
      (h) => (h.ok ? reply(res, 200, 'ok\n', method) : reply(res, 503, `${h.detail}\n`, method)),
      (error: unknown) => reply(res, 503, `${errorMessage(error)}\n`, method),
    )
    return
  }

  const paths = [...Object.keys(html), '/metrics', '/healthz', ...Object.keys(json)]
  reply(res, 404, `not found: try ${paths.join(', ')}\n`, method)
}

function reply(
  res: ServerResponse,
  status: number,
  body: string,
  method: string,
  type = 'text/plain; charset=utf-8',
): void {
  res.writeHead(status, {'Content-Type': type, 'Content-Length': Buffer.byteLength(body)})
  res.end(method === 'HEAD' ? undefined : body)
}

/** A listen failure as a UserError naming the fix; `what` is e.g. "serve metrics", `flag` the address flag. */
/** Listens on host:port; resolves with the bound address (host:port), or rejects with listenError's one-line error. */
export async function listenAt(
  server: Server,
  host: string,
  port: number,
  what: string,
  flag: string,
): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => reject(listenError(error, host, port, what, flag))
    server.once('error', onError)
    server.listen(port, host, () => {
      server.off('error', onError)
      resolve()
    })
  })
  const bound = server.address() as AddressInfo
  return formatHosts([{host: bound.address, port: bound.port}])
}

export function listenError(
  error: NodeJS.ErrnoException,
  host: string,
  port: number,
  what = 'serve metrics',
  flag = '--metrics',
): Error {
  const where = formatHosts([{host, port}])
  switch (error.code) {
    case 'EADDRINUSE': {
      return new UserError(
        `cannot ${what} on ${where}: the address is already in use`,
        `stop the process listening there or pick another port, e.g. ${flag} ${formatHosts([{host, port: port < 65_535 ? port + 1 : port - 1}])}`,
      )
    }

    case 'EACCES': {
      return new UserError(
        `cannot ${what} on ${where}: permission denied`,
        'use a port above 1023, or run with the privilege to bind low ports',
      )
    }

    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
    case 'EAI_AGAIN': {
      return new UserError(
        `cannot ${what} on ${where}: ${host} is not an address of this host`,
        'use 127.0.0.1, 0.0.0.0 (every interface) or one of this host’s addresses',
      )
    }

    default: {
      return error
    }
  }
}
