import type {Server} from 'node:net'

import {UserError} from '../errors.js'
import {NodeHttpProxy} from './engine-node-http.js'
import {checkInternals} from './internals.js'
import type {ProxyMetrics} from './metrics.js'
import type {RouteTable} from './routes.js'
import {type ProxyOptions, ProxyServer} from './server.js'

/** `llhttp`: Node's own parser driven directly (internals.ts); `node-http`: node:http and http.Agent only. */
export type ProxyEngineName = 'llhttp' | 'node-http'

/** Picks the engine: unset (check the internals, fall back when they moved), `llhttp` or `node-http` (forced). */
export const PROXY_ENGINE_ENV = 'SVC_PROXY_ENGINE'

/** What runProxy, the admin endpoints and the tests use of a proxy, whichever engine serves it. */
export interface ProxyEngine {
  readonly table: RouteTable
  readonly metrics: ProxyMetrics
  readonly draining: boolean
  readonly active: number
  /** The engine's own server: a connection another listener accepted (TLS, h2c sniffing) is handed to it. */
  readonly server: Server
  listen(): Promise<string>
  drain(timeoutMs: number): Promise<number>
}

export interface EngineChoice {
  /** Undefined when Node's internals behave as the llhttp engine expects, else what did not. */
  check?: () => Promise<string | undefined>
  /** The value of SVC_PROXY_ENGINE. */
  env?: string
}

/** The engine a proxy runs on; writes one warning line to `opts.log` when it falls back. */
export async function selectEngine(
  log: ((line: string) => void) | undefined,
  {check = checkInternals, env = process.env[PROXY_ENGINE_ENV]}: EngineChoice = {},
): Promise<ProxyEngineName> {
  const wanted = (env ?? '').trim()
  if (wanted === 'llhttp' || wanted === 'node-http') return wanted
  if (wanted !== '' && wanted !== 'auto') {
    throw new UserError(
      `${PROXY_ENGINE_ENV}=${wanted} names no proxy engine`,
      `set it to llhttp, node-http or auto, or unset it`,
    )
  }

  const problem = await check()
  if (problem === undefined) return 'llhttp'
  log?.(
    `warning: Node.js ${process.version} changed an internal the fast proxy engine uses (${problem}); serving with the node:http engine instead (slower; ${PROXY_ENGINE_ENV}=node-http skips this check)`,
  )
  return 'node-http'
}

/** A proxy on the engine `selectEngine` picks. */
export async function createProxyServer(
  opts: ProxyOptions,
  choice: EngineChoice = {},
): Promise<{engine: ProxyEngineName; proxy: ProxyEngine}> {
  const engine = await selectEngine(opts.log, choice)
  return {engine, proxy: engine === 'llhttp' ? new ProxyServer(opts) : new NodeHttpProxy(opts)}
}
