import {setTimeout as sleep} from 'node:timers/promises'

import {BackendUnavailableError, errorMessage} from '../errors.js'
import type {HostPort} from '../registry/spec.js'
import type {Registry} from '../registry/types.js'
import type {AnswerOptions} from './answer.js'
import {normaliseDomain} from './names.js'
import {DnsServer} from './server.js'
import {type HealthPolicy, Zone} from './zone.js'

export {type HealthPolicy, Zone} from './zone.js'
export {normaliseDomain} from './names.js'

export const DNS_DEFAULTS = {
  listen: '127.0.0.1:8600',
  domain: 'consul',
  datacenter: 'dc1',
  ttlSeconds: 0,
  recursorTimeoutMs: 2000,
  startTimeoutMs: 15_000,
  tcpIdleMs: 10_000,
} as const

export interface DnsOptions {
  listen: HostPort
  domain: string
  datacenter: string
  ttlSeconds: number
  negativeTtlSeconds: number
  policy: HealthPolicy
  recursor?: HostPort
  recursorTimeoutMs: number
  /** How long to wait for the registry's first snapshot before giving up. */
  startTimeoutMs?: number
  log(line: string): void
}

export interface RunningDns {
  /** host:port served on UDP and TCP. */
  address: string
  domain: string
  zone: Zone
  stop(): Promise<void>
}

/**
 * Serves DNS from one watch of every service: the zone is filled by the first snapshot and kept current by the
 * changes that follow, so no query reads the backend. The watch is restarted after a failure; answers go on meanwhile.
 */
export async function runDns(registry: Registry, opts: DnsOptions): Promise<RunningDns> {
  const zone = new Zone()
  const controller = new AbortController()
  const {signal} = controller
  let settle: ((error?: unknown) => void) | undefined
  const ready = new Promise<unknown>((resolve) => {
    settle = resolve
  })
  const following = follow(registry, zone, signal, opts.log, (error) => settle?.(error))
  const startTimeoutMs = opts.startTimeoutMs ?? DNS_DEFAULTS.startTimeoutMs
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), startTimeoutMs)
  })
  const domain = normaliseDomain(opts.domain)
  const answer: AnswerOptions = {
    domain,
    datacenter: opts.datacenter.toLowerCase(),
    ttl: opts.ttlSeconds,
    negativeTtl: opts.negativeTtlSeconds,
    policy: opts.policy,
    recursion: opts.recursor !== undefined,
  }
  const server = new DnsServer(zone, {
    ...answer,
    recursor: opts.recursor,
    recursorTimeoutMs: opts.recursorTimeoutMs,
    tcpIdleMs: DNS_DEFAULTS.tcpIdleMs,
    log: opts.log,
  })
  try {
    const outcome = await Promise.race([ready, timedOut])
    if (outcome === 'timeout') {
      throw new BackendUnavailableError(registry.kind, registry.description, `no snapshot within ${startTimeoutMs} ms`)
    }

    if (outcome !== undefined) throw outcome
    const bound = await server.listen(opts.listen.host, opts.listen.port)
    const host = bound.host.includes(':') ? `[${bound.host}]` : bound.host
    return {
      address: `${host}:${bound.port}`,
      domain,
      zone,
      async stop() {
        controller.abort()
        await Promise.all([following, server.close()])
      },
    }
  } catch (error) {
    controller.abort()
    await Promise.all([following, server.close()])
    throw error
  } finally {
    clearTimeout(timer)
  }
}

/** Applies every watch event to the zone; `started` settles with the first snapshot, or the error before one. */
async function follow(
  registry: Registry,
  zone: Zone,
  signal: AbortSignal,
  log: (line: string) => void,
  started: (error?: unknown) => void,
): Promise<void> {
  let snapshot = false
  let failing = ''
  while (!signal.aborted) {
    try {
      for await (const event of registry.watch(undefined, {signal})) {
        zone.apply(event)
        if (event.type === 'status' && event.state !== 'connected') log(`registry ${event.state}: ${event.detail}`)
        if (event.type !== 'snapshot') continue
        if (!snapshot) started()
        snapshot = true
        if (failing !== '') log('watch restored; answers up to date')
        failing = ''
      }
    } catch (error) {
      if (signal.aborted) break
      if (!snapshot) {
        started(error)
        break
      }

      // one line per kind of failure, not one a second
      const message = errorMessage(error)
      if (message !== failing) log(`watch failed: ${message}; retrying every second, answers unchanged meanwhile`)
      failing = message
    }

    if (!signal.aborted) await sleep(1000, undefined, {signal}).catch(() => {})
  }
}
