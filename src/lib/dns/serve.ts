import {UserError} from '../errors.js'
import {parseHostPort} from '../metrics/server.js'
import {parseListenAddress} from '../proxy/index.js'
import type {Registry} from '../registry/types.js'
import {runDns} from './index.js'

/** `svc dns`'s flags as parsed. */
export interface DnsFlags {
  listen: string
  domain: string
  datacenter: string
  ttl: number
  'negative-ttl': number
  'only-passing': boolean
  recursor?: string
  'recursor-timeout': number
}

export interface DnsRun {
  flags: DnsFlags
  registry: () => Promise<Registry>
  /** Aborted by SIGTERM or SIGINT. */
  signal: AbortSignal
  /** The address line, on stdout. */
  out: (line: string) => void
  log: (line: string) => void
}

/** Serves DNS until the signal, then stops listening and following the registry. */
export async function serveDns({flags, registry, signal, out, log}: DnsRun): Promise<void> {
  const listen = parseListenAddress(flags.listen, '--listen')
  const recursor = flags.recursor === undefined ? undefined : parseHostPort(flags.recursor, '--recursor')
  if (!/^[a-z\d-]+(\.[a-z\d-]+)*\.?$/i.test(flags.domain.replace(/^\./, ''))) {
    throw new UserError(
      `invalid --domain "${flags.domain}"`,
      'give DNS labels separated by dots, e.g. consul or svc.internal',
    )
  }

  if (!/^[a-z\d-]+$/i.test(flags.datacenter)) {
    throw new UserError(`invalid --datacenter "${flags.datacenter}"`, 'give one DNS label, e.g. dc1')
  }

  const source = await registry()
  const running = await runDns(source, {
    listen,
    domain: flags.domain,
    datacenter: flags.datacenter,
    ttlSeconds: flags.ttl,
    negativeTtlSeconds: flags['negative-ttl'],
    policy: flags['only-passing'] ? 'passing-only' : 'not-critical',
    recursor,
    recursorTimeoutMs: flags['recursor-timeout'],
    log,
  })
  const forwarding = recursor ? `, other names to ${flags.recursor}` : ''
  out(
    `svc dns listening on ${running.address} udp+tcp, domain ${running.domain}. from ${source.description}${forwarding}`,
  )
  await new Promise<void>((resolve) => {
    if (signal.aborted) resolve()
    else signal.addEventListener('abort', () => resolve(), {once: true})
  })
  await running.stop()
}
