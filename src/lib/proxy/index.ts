import {setTimeout as sleep} from 'node:timers/promises'

import {errorMessage} from '../errors.js'
import {type MetricsServer, parseHostPort, serveMetrics} from '../metrics/server.js'
import type {HostPort} from '../registry/spec.js'
import type {Registry} from '../registry/types.js'
import {ROUTE_PAGE} from './admin/page.js'
import {routesView} from './admin/routes-view.js'
import {createProxyServer, type EngineChoice, type ProxyEngine, type ProxyEngineName} from './engine.js'
import {type ListenerOptions, type Listeners, needsListeners, openListeners} from './listeners.js'
import type {ProxyOptions} from './server.js'
import {START_TIMEOUT_MS, StartWait} from './start-wait.js'

export {createProxyServer, PROXY_ENGINE_ENV, type ProxyEngine, type ProxyEngineName} from './engine.js'
export {START_TIMEOUT_MS} from './start-wait.js'
export {PROXY_DEFAULTS, PROXY_LIMITS, type ProxyLimits, type ProxyOptions, ProxyServer} from './server.js'

/** Parses a listen address, HOST:PORT; port 0 asks the system for a free port. */
export function parseListenAddress(value: string, flag: string): HostPort {
  const zero = /^(.*):0$/.exec(value.trim())
  if (zero === null) return parseHostPort(value, flag)
  return {...parseHostPort(`${zero[1]}:1`, flag), port: 0}
}

export interface RunProxyOptions extends ProxyOptions {
  /** TLS, h2c and the https redirect (listeners.ts); the engine's plain listener alone when unset. */
  listeners?: ListenerOptions
  /** Where to serve the route page (/), /routes, /metrics and /healthz; off when unset. */
  admin?: {host: string; port: number}
  /** How long to wait for the registry's first snapshot before giving up (default START_TIMEOUT_MS). */
  startTimeoutMs?: number
  /** Diagnostics (watch trouble, an engine fallback), one line each. */
  log(line: string): void
  /** How the engine is picked (tests force the internals check's outcome). */
  engine?: EngineChoice
}

export interface RunningProxy {
  proxy: ProxyEngine
  /** The engine serving it (see engine.ts). */
  engine: ProxyEngineName
  /** host:port the proxy listens on: the plain listener, or the TLS one when it serves TLS only. */
  address: string
  /** host:port of the plain listener, when there is one. */
  plainAddress?: string
  /** host:port of the TLS listener, when there is one. */
  tlsAddress?: string
  /** Re-reads the TLS certificate files (SIGHUP); false when there are none or a file failed (the old ones stay). */
  reload(): Promise<boolean>
  /** host:port of the admin listener, when there is one. */
  adminAddress?: string
  /** Stops following the registry, drains (bounded) and closes; resolves with the requests cut at the deadline. */
  stop(drainTimeoutMs: number): Promise<number>
}

/**
 * Runs the gateway: follows `registry.watch()` into the route table, listens once the first snapshot is in, and
 * serves the admin endpoints when asked. The watch is restarted after a failure; the table keeps serving meanwhile.
 */
export async function runProxy(registry: Registry, opts: RunProxyOptions): Promise<RunningProxy> {
  const {engine, proxy} = await createProxyServer(opts, opts.engine)
  const controller = new AbortController()
  const {signal} = controller
  // settles with the first snapshot (undefined) or the error that ended the watch before one came
  let settle: ((error?: unknown) => void) | undefined
  const ready = new Promise<unknown>((resolve) => {
    settle = resolve
  })
  let started = false
  const wait = new StartWait()
  const following = (async () => {
    let failing = ''
    while (!signal.aborted) {
      try {
        for await (const event of registry.watch(undefined, {signal})) {
          proxy.table.apply(event)
          if (!started) wait.see(event)
          if (event.type === 'status' && event.state !== 'connected')
            opts.log(`registry ${event.state}: ${event.detail}`)
          if (event.type !== 'snapshot') continue
          started = true
          settle?.()
          if (failing !== '') opts.log('watch restored; routes up to date')
          failing = ''
        }
      } catch (error) {
        if (signal.aborted) break
        if (!started) {
          settle?.(error)
          break
        }

        // one line per kind of failure, not one a second
        const message = errorMessage(error)
        if (message !== failing) opts.log(`watch failed: ${message}; retrying every second, routes unchanged meanwhile`)
        failing = message
      }

      if (!signal.aborted) await sleep(1000, undefined, {signal}).catch(() => {})
    }
  })()

  const startTimeoutMs = opts.startTimeoutMs ?? START_TIMEOUT_MS
  let timer: NodeJS.Timeout | undefined
  const timedOutError = new Error('timed out')
  const timedOut = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, startTimeoutMs)
  })
  const outcome = await Promise.race([ready, timedOut.then(() => timedOutError)])
  clearTimeout(timer)
  let admin: MetricsServer | undefined
  let edge: Listeners | undefined
  try {
    if (outcome === timedOutError) {
      throw wait.timedOut(registry, startTimeoutMs)
    }

    if (outcome !== undefined) throw outcome

    const wanted = opts.listeners
    edge = wanted !== undefined && needsListeners(wanted) ? await openListeners(proxy, {...opts, ...wanted}) : undefined
    const plainAddress = edge === undefined ? await proxy.listen() : edge.plainAddress
    const address = plainAddress ?? edge?.tlsAddress ?? ''
    if (opts.admin) {
      admin = await serveMetrics(proxy.metrics.registry, opts.admin.host, opts.admin.port, {
        json: {'/routes': () => routesView(proxy.table)},
        html: {'/': () => ROUTE_PAGE},
        what: 'serve the admin endpoints',
        flag: '--admin-listen',
      })
    }

    return {
      proxy,
      engine,
      address,
      plainAddress,
      tlsAddress: edge?.tlsAddress,
      adminAddress: admin?.address,
      reload: async () => (await edge?.reload()) ?? false,
      async stop(drainTimeoutMs) {
        const cuts = await Promise.all([proxy.drain(drainTimeoutMs), edge?.drain(drainTimeoutMs)])
        const cut = cuts[0] + (cuts[1] ?? 0)
        await edge?.close()
        controller.abort()
        await following
        await admin?.close()
        return cut
      },
    }
  } catch (error) {
    controller.abort()
    await following
    await admin?.close()
    await edge?.drain(0)
    await proxy.drain(0)
    await edge?.close()
    throw error
  }
}
