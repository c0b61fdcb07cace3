import * as Flags from '@oclif/core/flags'

import {backendFlags, durationDefault, durationFlag, validated} from '../flags.js'
import {BALANCE_STRATEGIES} from '../lib/balancer/strategies.js'
import {ACCESS_LOG_FORMATS} from '../lib/proxy/access-format.js'
import {parseHashKey} from '../lib/proxy/hash-key.js'
import {PROXY_DEFAULTS, PROXY_LIMITS, START_TIMEOUT_MS} from '../lib/proxy/index.js'
import {parseRouteSpec} from '../lib/proxy/routes.js'
import {parseTrustedProxies} from '../lib/proxy/trust.js'
import {withoutFlags} from '../lib/proxy/workers.js'
import type {BackendSettings} from '../registry-command.js'

/** A flag parser that validates with `parse` and keeps the text (parsed again where it is used). */
function checked(parse: (input: string) => unknown): (input: string) => string {
  return (input) => {
    parse(input)
    return input
  }
}

/** `svc proxy`'s flags; the LIMITS group bounds what one client may cost. */
export const proxyFlags = {
  listen: Flags.string({
    char: 'l',
    description: `plain HTTP address, HOST:PORT (port 0: a free port, printed at start); default ${PROXY_DEFAULTS.host}:${PROXY_DEFAULTS.port}, none when only --tls-listen is given`,
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
    ...durationDefault(PROXY_DEFAULTS.connectTimeoutMs),
  }),
  timeout: durationFlag({
    description: 'upstream response timeout: to the response headers, and between body chunks',
    ...durationDefault(PROXY_DEFAULTS.timeoutMs),
  }),
  'drain-timeout': durationFlag({
    description: 'on SIGTERM/SIGINT, how long requests in flight may finish',
    ...durationDefault(10_000),
  }),
  'start-timeout': durationFlag({
    description: "how long to wait for the registry's first snapshot before giving up",
    ...durationDefault(START_TIMEOUT_MS),
  }),
  workers: Flags.integer({
    description: 'processes serving the listener (node:cluster); each follows the registry',
    default: 1,
    min: 1,
    max: 64,
  }),
  'admin-listen': Flags.string({
    description:
      'serve the route page (/), /routes, /metrics and /healthz on HOST:PORT (off by default; under --workers N the primary answers for every worker)',
    env: 'SVC_PROXY_ADMIN',
  }),
  'access-log': Flags.string({
    description: 'one line per request: bare or "-" on stderr, else appended to FILE (reopened on SIGUSR1)',
    helpValue: '[FILE]',
  }),
  'access-log-format': Flags.string({
    description: "the access log's line: svc (svc's own line), combined (NCSA + upstream fields), json",
    options: [...ACCESS_LOG_FORMATS],
    default: 'svc',
  }),
  // TLS termination and HTTP/2 (docs/proxy.md#tls)
  'tls-listen': Flags.string({
    description: 'serve TLS on HOST:PORT too: HTTP/2 when the client offers h2 (ALPN), else HTTP/1.1',
    env: 'SVC_PROXY_TLS_LISTEN',
    dependsOn: ['tls-cert', 'tls-key'],
    helpGroup: 'TLS',
  }),
  'tls-cert': Flags.string({
    description:
      'PEM certificate (chain), repeatable with one --tls-key each; the first is the default, SNI picks the others by their names',
    multiple: true,
    dependsOn: ['tls-listen', 'tls-key'],
    helpGroup: 'TLS',
  }),
  'tls-key': Flags.string({
    description: 'PEM private key of the --tls-cert in the same position (re-read with the certificates on SIGHUP)',
    multiple: true,
    dependsOn: ['tls-listen', 'tls-cert'],
    helpGroup: 'TLS',
  }),
  'redirect-https': Flags.boolean({
    description: 'the plain listener answers every request with 308 to the same URL on https (the --tls-listen port)',
    dependsOn: ['tls-listen'],
    helpGroup: 'TLS',
  }),
  h2c: Flags.boolean({
    description:
      'serve HTTP/2 with prior knowledge (h2c, e.g. plaintext gRPC clients) on the plain listener, beside HTTP/1.1',
    helpGroup: 'TLS',
  }),
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
    ...durationDefault(PROXY_LIMITS.headersTimeoutMs),
    helpGroup: 'LIMITS',
  }),
  'body-timeout': durationFlag({
    description: 'silence allowed in the middle of a request body',
    ...durationDefault(PROXY_LIMITS.bodyTimeoutMs),
    helpGroup: 'LIMITS',
  }),
  'idle-timeout': durationFlag({
    description: 'a kept-alive client connection with no request is closed after this long',
    ...durationDefault(PROXY_LIMITS.idleTimeoutMs),
    helpGroup: 'LIMITS',
  }),
}

/**
 * `argv` with a bare `--access-log` (last, or before another flag) given the value `-` (stderr): oclif has no flag
 * whose value may be left out, and `svc proxy` takes no positional argument a value could be confused with.
 */
export function withAccessLogValue(argv: readonly string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--') {
      out.push(...argv.slice(i))
      break
    }

    out.push(arg)
    const next = argv[i + 1]
    if (arg === '--access-log' && (next === undefined || (next.startsWith('-') && next !== '-'))) out.push('-')
  }

  return out
}

/**
 * The workers' arguments and environment: the backend flags that may hold a secret (a password in the URI, a
 * token, zk credentials) go to them as environment variables, never on their command lines.
 */
export function workerBackend(
  settings: BackendSettings,
  argv: readonly string[],
): {args: string[]; env: Record<string, string>} {
  const secret = ['backend', 'token', 'zk-auth'] as const
  const env: Record<string, string> = {}
  for (const name of secret) {
    const value = settings[name]
    const variable = backendFlags[name].env
    if (value !== undefined && variable !== undefined) env[variable] = value
  }

  const args = withoutFlags(
    argv,
    secret.map((name) => ({name, char: backendFlags[name].char})),
  )
  return {args, env}
}
