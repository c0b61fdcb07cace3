import cluster from 'node:cluster'

import * as Flags from '@oclif/core/flags'

import {SvcCommand} from '../base-command.js'
import {backendFlags, durationFlag, validated} from '../flags.js'
import {BALANCE_STRATEGIES, parseBalanceStrategy} from '../lib/balancer/strategies.js'
import {formatError} from '../lib/errors.js'
import {parseHashKey} from '../lib/proxy/hash-key.js'
import {parseListenAddress, PROXY_DEFAULTS, PROXY_LIMITS, runProxy} from '../lib/proxy/index.js'
import {parseRouteSpec} from '../lib/proxy/routes.js'
import {parseTrustedProxies} from '../lib/proxy/trust.js'
import {runPrimary, type WorkerMessage, withoutFlags, workerNumber} from '../lib/proxy/workers.js'

export default class Proxy extends SvcCommand<typeof Proxy> {
  static summary = 'HTTP gateway: /<service>/<path> goes to a healthy instance of <service>.'
  static description = `Forwards each request to a healthy (passing) instance of the service it names, from a route table kept in memory by the registry's watch stream: /<service>/<path> goes to the instance as /<path>, query kept. --route adds explicit prefixes (longest wins); --host-routing routes Host <service>.<anything>. Unknown service: 404; no healthy instance: 503. Only registered services are reachable.
Instances with repeated connection failures or 5xx answers are ejected for a growing time (never all of a service); idempotent requests that fail to connect, or whose instance leaves, are retried on up to two other instances. Keep-alive pools, streaming both ways, WebSocket upgrades (tunnelled only after the upstream's 101), X-Forwarded-For/-Proto/-Host (a client's own are dropped unless it is a --trusted-proxy). What is refused at the edge, and how: docs/security.md.
Slow or oversized clients are cut off: heads over --max-header-size get 431, targets over --max-url-length 414, heads slower than --header-timeout and bodies stalled for --body-timeout 408. Dot segments are resolved before routing; a path whose .. segments leave the service it names gets 404. SIGTERM or SIGINT drains: no new connections, requests in flight finish (bounded by --drain-timeout).`

  static examples = [
    '<%= config.bin %> proxy',
    '<%= config.bin %> proxy --listen 0.0.0.0:8080 --admin-listen 127.0.0.1:9901 -b etcd',
    '<%= config.bin %> proxy --route /api=api-v2 --route /=web --strategy least-conn',
    '<%= config.bin %> proxy --strategy hash --hash-key cookie:session --workers 2',
  ]

  static flags = {
    listen: Flags.string({
      char: 'l',
      description: 'address to serve on, HOST:PORT (port 0: a free port, printed at start)',
      default: `${PROXY_DEFAULTS.host}:${PROXY_DEFAULTS.port}`,
      env: 'SVC_PROXY_LISTEN',
    }),
    strategy: Flags.string({
      char: 's',
      description: 'load balancing across the instances of a service (weighted by the "weight" meta value)',
      options: [...BALANCE_STRATEGIES],
      default: PROXY_DEFAULTS.strategy,
    }),
    'hash-key': Flags.string({
      description: 'with --strategy hash: what to hash, header:NAME, cookie:NAME or ip',
      default: 'ip',
      parse: validated(checked(parseHashKey)),
    }),
    route: Flags.string({
      char: 'r',
      description: 'explicit route PREFIX=SERVICE, e.g. /api=api-v2 (repeatable; longest prefix wins)',
      multiple: true,
      parse: validated(checked(parseRouteSpec)),
    }),
    'host-routing': Flags.boolean({description: 'route by Host: <service>.<anything> goes to <service>'}),
    'connect-timeout': durationFlag({
      description: 'upstream connect timeout',
      default: PROXY_DEFAULTS.connectTimeoutMs,
    }),
    timeout: durationFlag({
      description: 'upstream response timeout: to the response headers, and between body chunks',
      default: PROXY_DEFAULTS.timeoutMs,
    }),
    'drain-timeout': durationFlag({
      description: 'on SIGTERM/SIGINT, how long requests in flight may finish',
      default: 10_000,
    }),
    workers: Flags.integer({
      description: 'processes serving the listener (node:cluster); each follows the registry',
      default: 1,
      min: 1,
      max: 64,
    }),
    'admin-listen': Flags.string({
      description: 'serve /routes, /metrics and /healthz on HOST:PORT (off by default; worker 1 serves it)',
      env: 'SVC_PROXY_ADMIN',
    }),
    'access-log': Flags.boolean({description: 'one line per request on stderr'}),
    'trusted-proxy': Flags.string({
      description: 'address or CIDR of a proxy in front of this one whose X-Forwarded-* headers are kept (repeatable)',
      multiple: true,
      parse: validated(checked((v) => parseTrustedProxies([v]))),
      helpGroup: 'LIMITS',
    }),
    'max-header-size': Flags.integer({
      description: 'largest request head (request line and headers) in bytes; larger gets 431',
      default: PROXY_LIMITS.maxHeaderBytes,
      min: 1024,
      max: 1_048_576,
      helpGroup: 'LIMITS',
    }),
    'max-url-length': Flags.integer({
      description: 'longest request target in bytes; longer gets 414',
      default: PROXY_LIMITS.maxUrlBytes,
      min: 64,
      max: 1_048_576,
      helpGroup: 'LIMITS',
    }),
    'header-timeout': durationFlag({
      description: "time a client has to send a request's head (slow clients get 408)",
      default: PROXY_LIMITS.headersTimeoutMs,
      helpGroup: 'LIMITS',
    }),
    'body-timeout': durationFlag({
      description: 'silence allowed in the middle of a request body',
      default: PROXY_LIMITS.bodyTimeoutMs,
      helpGroup: 'LIMITS',
    }),
    'idle-timeout': durationFlag({
      description: 'a kept-alive client connection with no request is closed after this long',
      default: PROXY_LIMITS.idleTimeoutMs,
      helpGroup: 'LIMITS',
    }),
  }

  async run(): Promise<void> {
    const {flags} = this
    const listen = parseListenAddress(flags.listen, '--listen')
    const admin =
      flags['admin-listen'] === undefined ? undefined : parseListenAddress(flags['admin-listen'], '--admin-listen')
    const signal = shutdownSignal()
    if (flags.workers > 1 && cluster.isPrimary) {
      const primary = await runPrimary({
        workers: flags.workers,
        startTimeoutMs: 30_000,
        log: (l) => this.warnLine(l),
        ...(await this.workerBackend()),
      })
      this.ready(primary.address, primary.adminAddress, `${flags.workers} workers`)
      await signal
      this.warnLine('draining')
      const cut = await primary.stop(flags['drain-timeout'])
      this.warnLine(cut === 0 ? 'stopped' : `stopped; ${cut} requests cut at the drain deadline`)
      return
    }

    const worker = workerNumber()
    try {
      const registry = await this.registry()
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
        admin: worker === undefined || worker === 1 ? admin : undefined,
        accessLog: flags['access-log'] ? (line) => process.stderr.write(line + '\n') : undefined,
        log: (line) => this.warnLine(line),
      })
      if (worker === undefined) this.ready(running.address, running.adminAddress, `routes from ${registry.description}`)
      else send({type: 'ready', address: running.address, adminAddress: running.adminAddress})
      await signal
      if (worker === undefined) this.warnLine(`draining (${running.proxy.active} in flight)`)
      const cut = await running.stop(flags['drain-timeout'])
      if (worker === undefined)
        this.warnLine(cut === 0 ? 'stopped' : `stopped; ${cut} requests cut at the drain deadline`)
      // the IPC channel would keep the worker alive: let go of it once the primary has the count
      else send({type: 'stopped', cut}, () => process.disconnect?.())
    } catch (error) {
      if (worker === undefined) throw error
      // the primary reports it, once
      send({type: 'failed', message: formatError(error)}, () => process.disconnect?.())
      process.exitCode = 1
    }
  }

  /**
   * The workers' arguments and environment: the backend flags that may hold a secret (a password in the URI, a
   * token, zk credentials) go to them as environment variables, never on their command lines.
   */
  private async workerBackend(): Promise<{args: string[]; env: Record<string, string>}> {
    const settings = await this.backendSettings()
    const secret = ['backend', 'token', 'zk-auth'] as const
    const env: Record<string, string> = {}
    for (const name of secret) {
      const value = settings[name]
      const variable = backendFlags[name].env
      if (value !== undefined && variable !== undefined) env[variable] = value
    }

    const args = withoutFlags(
      process.argv.slice(2),
      secret.map((name) => ({name, char: backendFlags[name].char})),
    )
    return {args, env}
  }

  private ready(address: string, adminAddress: string | undefined, detail: string): void {
    this.log(`svc proxy listening on http://${address} (${detail})`)
    if (adminAddress) this.log(`svc proxy admin on http://${adminAddress} (/routes, /metrics, /healthz)`)
  }
}

/** Resolves on the first SIGTERM or SIGINT; later ones are ignored while draining. */
function shutdownSignal(): Promise<void> {
  return new Promise((resolve) => {
    const on = (): void => resolve()
    process.on('SIGTERM', on)
    process.on('SIGINT', on)
  })
}

/** A flag parser that validates with `parse` and keeps the text (parsed again where it is used). */
function checked(parse: (input: string) => unknown): (input: string) => string {
  return (input) => {
    parse(input)
    return input
  }
}

function send(message: WorkerMessage, then?: () => void): void {
  process.send?.(message, undefined, {}, () => then?.())
}
