import * as Flags from '@oclif/core/flags'

import {backendFlags, durationDefault, durationFlag, validated} from '../flags.js'
import {BALANCE_STRATEGIES} from '../lib/balancer/strategies.js'
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
