import {setTimeout as sleep} from 'node:timers/promises'

import {BackendUnavailableError, errorMessage} from '../errors.js'
import {type MetricsServer, parseHostPort, serveMetrics} from '../metrics/server.js'
import type {HostPort} from '../registry/spec.js'
import type {Registry} from '../registry/types.js'
import {type ProxyOptions, ProxyServer} from './server.js'

export {PROXY_DEFAULTS, type ProxyOptions, ProxyServer} from './server.js'

/** Parses a listen address, HOST:PORT; port 0 asks the system for a free port. */
export function parseListenAddress(value: string, flag: string): HostPort {
  const zero = /^(.*):0$/.exec(value.trim())
  if (zero === null) return parseHostPort(value, flag)
  return {...parseHostPort(`${zero[1]}:1`, flag), port: 0}
}

export interface RunProxyOptions extends ProxyOptions {
  /** Where to serve /routes, /metrics and /healthz; off when unset. */
  admin?: {host: string; port: number}
  /** How long to wait for the registry's first snapshot before giving up. */
  startTimeoutMs?: number
  /** Diagnostics (watch trouble), one line each. */
  log(line: string): void
}

export interface RunningProxy {
  proxy: ProxyServer
  /** host:port the proxy listens on. */
  address: string
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
  const proxy = new ProxyServer(opts)
  const controller = new AbortController()
  const {signal} = controller
  let first: (() => void) | undefined
  const ready = new Promise<void>((resolve) => {
    first = resolve
  })
  const following = (async () => {
    while (!signal.aborted) {
      try {
        for await (const event of registry.watch(undefined, {signal})) {
          proxy.table.apply(event)
          if (event.type === 'snapshot') first?.()
          else if (event.type === 'status' && event.state !== 'connected')
            opts.log(`registry ${event.state}: ${event.detail}`)
        }
      } catch (error) {
        if (signal.aborted) break
        opts.log(`watch failed: ${errorMessage(error)}; retrying in 1 s (routes unchanged meanwhile)`)
      }

      if (!signal.aborted) await sleep(1000, undefined, {signal}).catch(() => {})
    }
  })()

  const startTimeoutMs = opts.startTimeoutMs ?? 15_000
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), startTimeoutMs)
  })
  const late = await Promise.race([ready.then(() => false), timedOut])
  clearTimeout(timer)
  let admin: MetricsServer | undefined
  try {
    if (late) {
      throw new BackendUnavailableError(registry.kind, registry.description, `no snapshot within ${startTimeoutMs} ms`)
    }

    const address = await proxy.listen()
    if (opts.admin) {
      admin = await serveMetrics(() => proxy.metrics.render(), opts.admin.host, opts.admin.port, {
        json: {'/routes': () => proxy.table.snapshot()},
        what: 'serve the admin endpoints',
        flag: '--admin-listen',
      })
    }

    return {
      proxy,
      address,
      adminAddress: admin?.address,
      async stop(drainTimeoutMs) {
        const cut = await proxy.drain(drainTimeoutMs)
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
    await proxy.drain(0)
    throw error
  }
}
