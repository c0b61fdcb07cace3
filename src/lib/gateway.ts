import cluster from 'node:cluster'

import {parseBalanceStrategy} from './balancer/strategies.js'
import {formatError} from './errors.js'
import {parseHashKey} from './proxy/hash-key.js'
import {parseListenAddress, runProxy} from './proxy/index.js'
import {parseRouteSpec} from './proxy/routes.js'
import {parseTrustedProxies} from './proxy/trust.js'
import {runPrimary, type WorkerMessage, workerNumber} from './proxy/workers.js'
import type {Registry} from './registry/types.js'

/** `svc proxy`'s flags as parsed. */
export interface GatewayFlags {
  listen: string
  'admin-listen'?: string
  strategy: string
  'hash-key': string
  route?: string[]
  'host-routing': boolean
  'connect-timeout': number
  timeout: number
  'drain-timeout': number
  workers: number
  'access-log': boolean
  'trusted-proxy'?: string[]
  'max-header-size': number
  'max-url-length': number
  'header-timeout': number
  'body-timeout': number
  'idle-timeout': number
  'start-timeout': number
}

export interface GatewayRun {
  flags: GatewayFlags
  registry: () => Promise<Registry>
  /** The workers' arguments and the secrets they get in their environment. */
  workerBackend: () => Promise<{args: string[]; env: Record<string, string>}>
  /** Aborted by the first SIGTERM or SIGINT: drain and stop. */
  signal: AbortSignal
  /** The address lines, on stdout. */
  out: (line: string) => void
  log: (line: string) => void
}

/** Serves the proxy until the signal, in one process or as the primary of --workers processes, then drains. */
export async function runGateway(run: GatewayRun): Promise<void> {
  const {flags, log} = run
  const listen = parseListenAddress(flags.listen, '--listen')
  const admin =
    flags['admin-listen'] === undefined ? undefined : parseListenAddress(flags['admin-listen'], '--admin-listen')
  if (flags.workers > 1 && cluster.isPrimary) {
    const primary = await runPrimary({
      workers: flags.workers,
      // each worker waits up to --start-timeout for its snapshot, then reports; the primary waits a little longer
      startTimeoutMs: flags['start-timeout'] + 15_000,
      log,
      ...(await run.workerBackend()),
    })
    ready(run.out, primary.address, primary.adminAddress, `${flags.workers} workers`)
    await aborted(run.signal)
    log('draining')
    log(stopped(await primary.stop(flags['drain-timeout'])))
    return
  }

  const worker = workerNumber()
  try {
    const registry = await run.registry()
    const running = await runProxy(registry, {
      host: listen.host,
      port: listen.port,
      strategy: parseBalanceStrategy(flags.strategy),
      hashKey: parseHashKey(flags['hash-key']),
      routes: (flags.route ?? []).map((r) => parseRouteSpec(r)),
      hostRouting: flags['host-routing'],
      connectTimeoutMs: flags['connect-timeout'],
      timeoutMs: flags.timeout,
      limits: {
        maxHeaderBytes: flags['max-header-size'],
        maxUrlBytes: flags['max-url-length'],
        headersTimeoutMs: flags['header-timeout'],
        bodyTimeoutMs: flags['body-timeout'],
        idleTimeoutMs: flags['idle-timeout'],
      },
      trustedProxy: parseTrustedProxies(flags['trusted-proxy'] ?? []),
      startTimeoutMs: flags['start-timeout'],
      admin: worker === undefined || worker === 1 ? admin : undefined,
      accessLog: flags['access-log'] ? (line) => process.stderr.write(line + '\n') : undefined,
      log,
    })
    if (worker === undefined)
      ready(run.out, running.address, running.adminAddress, `routes from ${registry.description}`)
    else send({type: 'ready', address: running.address, adminAddress: running.adminAddress})
    await aborted(run.signal)
    if (worker === undefined) log(`draining (${running.proxy.active} in flight)`)
    const cut = await running.stop(flags['drain-timeout'])
    if (worker === undefined) log(stopped(cut))
    // the IPC channel would keep the worker alive: let go of it once the primary has the count
    else send({type: 'stopped', cut}, () => process.disconnect?.())
  } catch (error) {
    if (worker === undefined) throw error
    // the primary reports it, once
    send({type: 'failed', message: formatError(error)}, () => process.disconnect?.())
    process.exitCode = 1
  }
}

function stopped(cut: number): string {
  return cut === 0 ? 'stopped' : `stopped; ${cut} requests cut at the drain deadline`
}

function ready(out: (line: string) => void, address: string, adminAddress: string | undefined, detail: string): void {
  out(`svc proxy listening on http://${address} (${detail})`)
  if (adminAddress) out(`svc proxy admin on http://${adminAddress} (/routes, /metrics, /healthz)`)
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve()
    else signal.addEventListener('abort', () => resolve(), {once: true})
  })
}

function send(message: WorkerMessage, then?: () => void): void {
  process.send?.(message, undefined, {}, () => then?.())
}
