import type {OwnedRecord} from '../core/driver.js'
import type {Health} from '../types.js'
import {aliveCheckId, consulStatus, encodeMeta, ttlCheckId} from './records.js'

/** Consul refuses a DeregisterCriticalServiceAfter below one minute. */
const MIN_DEREGISTER_AFTER_MS = 60_000

interface CheckDefinition {
  name: string
  checkid: string
  interval?: string
  timeout: string
  aliasservice?: string
  http?: string
  tcp?: string
  ttl?: string
  notes?: string
  status?: string
  deregistercriticalserviceafter?: string
}

/** What /v1/agent/service/register takes, as the consul package spells it. */
export interface ServiceDefinition {
  name: string
  id: string
  address: string
  port: number
  tags: string[]
  meta: Record<string, string>
  check?: CheckDefinition
  checks?: CheckDefinition[]
}

/** The registration runs HTTP/TCP checks in Consul; otherwise its check aliases this process's owner check. */
export function hasNativeCheck(record: OwnedRecord): boolean {
  return Boolean(record.check?.http || record.check?.tcp)
}

/** A hand-set status stays until svc changes it; the alias check, not this one, tells liveness. */
const HAND_SET_TTL = '87600h'

const ms = (value: number): string => `${Math.max(1, Math.round(value))}ms`

/** The agent-service definition of one record, owner in its meta. */
/**
 * `ownerServiceId`: the owner service its liveness aliases; undefined where the token may not write the owner
 * service: a TTL check of its own, passed at every refresh.
 */
export function serviceDefinition(
  record: OwnedRecord,
  health: Health,
  ownerServiceId: string | undefined,
): ServiceDefinition {
  const {instance, check} = record
  const {address, id, port, service, tags} = instance
  const native = hasNativeCheck(record)
  const meta = encodeMeta(instance, record.owner, !native && health === 'unknown')
  const base = {name: service, id, address, port, tags, meta}
  const deregisterAfter = check?.deregisterAfterMs
  if (native && check) {
    const common = {
      interval: ms(check.intervalMs),
      timeout: ms(check.timeoutMs),
      ...(deregisterAfter === undefined
        ? {}
        : {deregistercriticalserviceafter: ms(Math.max(MIN_DEREGISTER_AFTER_MS, deregisterAfter))}),
    }
    const checks: CheckDefinition[] = []
    if (check.http)
      checks.push({name: `svc http ${check.http}`, checkid: `service:${id}:http`, http: check.http, ...common})
    if (check.tcp) checks.push({name: `svc tcp ${check.tcp}`, checkid: `service:${id}:tcp`, tcp: check.tcp, ...common})
    return {...base, checks}
  }

  if (ownerServiceId === undefined)
    return {...base, check: ttlCheck(record, health, 'passed by the svc process that registered the service')}
  // liveness: an alias of the owner's one TTL check; health set by hand: a TTL check that never expires in practice
  const checks: CheckDefinition[] = [
    {
      name: 'svc owner alive',
      checkid: aliveCheckId(id),
      aliasservice: ownerServiceId,
      timeout: ms(record.ttlMs),
      notes: 'passing while the svc process that registered the service passes its owner check',
      // the copy left behind on an agent svc moved away from (or that the owner abandoned) does not linger
      deregistercriticalserviceafter: ms(Math.max(MIN_DEREGISTER_AFTER_MS, deregisterAfter ?? 0)),
    },
  ]
  if (health !== 'passing') {
    checks.push({
      name: 'svc health',
      checkid: ttlCheckId(id),
      notes: 'health set by the svc process that registered the service',
      ttl: HAND_SET_TTL,
      timeout: ms(record.ttlMs),
      status: consulStatus(health),
    })
  }

  return {...base, checks}
}

/** A TTL check of the record's own: critical after the TTL unless passed, then reaped. */
export function ttlCheck(record: OwnedRecord, health: Health, notes: string): CheckDefinition {
  return {
    name: 'svc heartbeat',
    checkid: ttlCheckId(record.instance.id),
    notes,
    ttl: ms(record.ttlMs),
    timeout: ms(record.ttlMs),
    status: consulStatus(health),
    deregistercriticalserviceafter: ms(Math.max(MIN_DEREGISTER_AFTER_MS, record.check?.deregisterAfterMs ?? 0)),
  }
}
