import {quote, UserError} from './errors.js'
import {checkUrl, defaultAddress} from './net.js'
import type {CheckSpec, ServiceInstance} from './registry/types.js'
import {parseMeta, toInstance} from './registry/validate.js'

/** What `svc register` is told: its argument and flags, as parsed. */
export interface RegisterRequest {
  service: string
  port: number
  address?: string
  id?: string
  tags?: string[]
  meta?: string[]
  checkHttp?: string
  checkTcp: boolean
  checkIntervalMs: number
  checkTimeoutMs: number
  /** The local backend advertises loopback by default. */
  local: boolean
}

/**
 * The instance and check a registration would write, validated exactly as the registry validates them, so that
 * `--dry-run` refuses what a real run refuses.
 */
export function planRegistration(request: RegisterRequest): {instance: ServiceInstance; check?: CheckSpec} {
  const meta = parseMeta(request.meta ?? [])
  checkWeight(meta.weight)
  const address = request.address ?? defaultAddress(request.local)
  const instance = toInstance({
    service: request.service,
    id: request.id,
    address,
    port: request.port,
    tags: request.tags,
    meta,
  })
  return {instance, check: checkSpec(request, instance)}
}

/** The balancer reads `weight` as a share of the traffic: a number of at least 0 (0: only when nothing else is up). */
function checkWeight(weight: string | undefined): void {
  if (weight === undefined) return
  if (!/^\d+(\.\d+)?$/.test(weight)) {
    throw new UserError(`invalid --meta weight=${quote(weight)}`, 'the weight is a number of at least 0, e.g. weight=2')
  }
}

function checkSpec(request: RegisterRequest, instance: ServiceInstance): CheckSpec | undefined {
  const host = instance.address.includes(':') ? `[${instance.address}]` : instance.address
  const common = {intervalMs: request.checkIntervalMs, timeoutMs: request.checkTimeoutMs}
  const target = request.checkHttp
  if (target !== undefined) {
    const url = /^https?:\/\//.test(target)
      ? target
      : `http://${host}:${instance.port}${target.startsWith('/') ? '' : '/'}${target}`
    return {...common, http: checkUrl(url)}
  }

  return request.checkTcp ? {...common, tcp: `${host}:${instance.port}`} : undefined
}
