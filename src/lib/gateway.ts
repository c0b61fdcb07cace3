import cluster from 'node:cluster'

import {parseBalanceStrategy} from './balancer/strategies.js'
import {formatError, UserError} from './errors.js'
import {type AccessLog, accessLogOf} from './proxy/access-log.js'
import {answerAdminRequests} from './proxy/admin/worker-states.js'
import {serveWorkersAdmin} from './proxy/admin/workers-admin.js'
import {parseHashKey} from './proxy/hash-key.js'
import {parseListenAddress, PROXY_DEFAULTS, runProxy, type RunningProxy} from './proxy/index.js'
import type {ListenerOptions} from './proxy/listeners.js'
import {loadCertStore, pairCertFlags} from './proxy/tls/certs.js'
import {parseRouteSpec} from './proxy/routes.js'
import {parseTrustedProxies} from './proxy/trust.js'
import {runPrimary, type WorkerMessage, workerNumber} from './proxy/workers.js'
import type {HostPort} from './registry/spec.js'
import type {Registry} from './registry/types.js'

/** `svc proxy`'s flags as parsed. */
export interface GatewayFlags {
  listen?: string
  'admin-listen'?: string
  strategy: string
  'hash-key': string
  route?: string[]
  'host-routing': boolean
  'connect-timeout': number
  timeout: number
  'drain-timeout': number
  workers: number
  /** `-`: stderr; else a file to append to; undefined: off. */
  'access-log'?: string
  'access-log-format': string
  'trusted-proxy'?: string[]
  'max-header-size': number
  'max-url-length': number
  'header-timeout': number
  'body-timeout': number
  'idle-timeout': number
  'tls-listen'?: string
  'tls-cert'?: string[]
  'tls-key'?: string[]
  'redirect-https': boolean
  h2c: boolean
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
  const listeners = await listenerOptions(flags)
  const admin =
    flags['admin-listen'] === undefined ? undefined : parseListenAddress(flags['admin-listen'], '--admin-listen')
  if (flags.workers > 1 && cluster.isPrimary) {
    await servePrimary(run, listeners, admin)
    return
  }

  const worker = workerNumber()
  let accessLog: AccessLog | undefined
  const reopen = (): void => accessLog?.reopen()
  try {
    accessLog = accessLogOf(flags['access-log'], flags['access-log-format'], log)
    if (accessLog !== undefined) process.on('SIGUSR1', reopen)
    const registry = await run.registry()
    const running = await runProxy(registry, {
      host: listeners.plain?.host ?? PROXY_DEFAULTS.host,
      port: listeners.plain?.port ?? PROXY_DEFAULTS.port,
      listeners,
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
      // under --workers the primary serves it, asking every worker
      admin: worker === undefined ? admin : undefined,
      accessLog,
      log,
    })
    const stopAnswering = announce(run, worker, running, registry.description)

    const hup = (): void => {
      running.reload().catch(() => {})
    }

    if (listeners.tls !== undefined) process.on('SIGHUP', hup)
    await aborted(run.signal)
    process.off('SIGHUP', hup)
    if (worker === undefined) log(`draining (${running.proxy.active} in flight)`)
    const cut = await running.stop(flags['drain-timeout'])
    stopAnswering?.()
    if (worker === undefined) log(stopped(cut))
    // the IPC channel would keep the worker alive: let go of it once the primary has the count
    else send({type: 'stopped', cut}, () => process.disconnect?.())
  } catch (error) {
    if (worker === undefined) throw error
    // the primary reports it, once
    send({type: 'failed', message: formatError(error)}, () => process.disconnect?.())
    process.exitCode = 1
  } finally {
    process.off('SIGUSR1', reopen)
    await accessLog?.close()
  }
}

/**
 * Says the proxy is up: its address lines in a single process; in a worker, to the primary, which from then on
 * asks it for its metrics and routes (until the returned call).
 */
function announce(
  run: GatewayRun,
  worker: number | undefined,
  running: RunningProxy,
  description: string,
): (() => void) | undefined {
  if (worker === undefined) {
    ready(run.out, running, `routes from ${description}`)
    return undefined
  }

  const stopAnswering = answerAdminRequests(running.proxy)
  const {address, plainAddress, tlsAddress} = running
  send({type: 'ready', address, plainAddress, tlsAddress})
  return stopAnswering
}

/** The primary of --workers processes: starts them, passes signals on, and drains them. */
async function servePrimary(run: GatewayRun, listeners: ListenerOptions, at: HostPort | undefined): Promise<void> {
  const {flags, log} = run
  const primary = await runPrimary({
    workers: flags.workers,
    // each worker waits up to --start-timeout for its snapshot, then reports; the primary waits a little longer
    startTimeoutMs: flags['start-timeout'] + 15_000,
    // each worker writes its own lines (O_APPEND); logrotate signals the primary, which passes it on
    forwardSignals: flags['access-log'] === undefined ? [] : ['SIGUSR1'],
    log,
    ...(await run.workerBackend()),
  })
  const admin =
    at === undefined
      ? undefined
      : await serveWorkersAdmin(primary, at).catch(async (error: unknown) => {
          await primary.stop(0)
          throw error
        })
  ready(run.out, {...primary, adminAddress: admin?.address}, `${flags.workers} workers`)
  // each worker holds its own TLS listener: a reload is theirs to do
  const hup = (): void => primary.forward('SIGHUP')
  if (listeners.tls !== undefined) process.on('SIGHUP', hup)
  await aborted(run.signal)
  process.off('SIGHUP', hup)
  await admin?.close()
  log('draining')
  log(stopped(await primary.stop(flags['drain-timeout'])))
}

function stopped(cut: number): string {
  return cut === 0 ? 'stopped' : `stopped; ${cut} requests cut at the drain deadline`
}

interface Addresses {
  plainAddress?: string
  tlsAddress?: string
  adminAddress?: string
}

function ready(out: (line: string) => void, at: Addresses, detail: string): void {
  if (at.plainAddress) out(`svc proxy listening on http://${at.plainAddress} (${detail})`)
  if (at.tlsAddress) out(`svc proxy listening on https://${at.tlsAddress} (TLS: h2 and http/1.1; ${detail})`)
  if (at.adminAddress) out(`svc proxy admin on http://${at.adminAddress} (/ route page, /routes, /metrics, /healthz)`)
}

/**
 * The listeners the flags ask for: the plain one unless only --tls-listen is given (as fabio and Traefik serve
 * the addresses they are given, no more), TLS with its certificates checked now, so a bad file stops the start.
 */
async function listenerOptions(flags: GatewayFlags): Promise<ListenerOptions> {
  const tlsOnly =
    flags.listen === undefined && flags['tls-listen'] !== undefined && !flags['redirect-https'] && !flags.h2c
  const plain = tlsOnly
    ? undefined
    : parseListenAddress(flags.listen ?? `${PROXY_DEFAULTS.host}:${PROXY_DEFAULTS.port}`, '--listen')
  if (flags['tls-listen'] === undefined) return {plain, h2c: flags.h2c}
  const certs = pairCertFlags(flags['tls-cert'] ?? [], flags['tls-key'] ?? [])
  if (certs.length === 0) throw new UserError('--tls-listen needs a certificate', 'add --tls-cert FILE --tls-key FILE')
  await loadCertStore(certs)
  return {
    plain,
    tls: {...parseListenAddress(flags['tls-listen'], '--tls-listen'), certs},
    h2c: flags.h2c,
    redirectHttps: flags['redirect-https'],
  }
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
