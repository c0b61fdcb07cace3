import type {OwnedRecord} from '../core/driver.js'
import type {Health} from '../types.js'
import {consulStatus, encodeMeta, ttlCheckId} from './records.js'

/** Consul refuses a DeregisterCriticalServiceAfter below one minute. */
const MIN_DEREGISTER_AFTER_MS = 60_000

interface CheckDefinition {
  name: string
  checkid: string
  interval?: string
  timeout: string
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

/** The registration runs HTTP/TCP checks in Consul; otherwise it carries a TTL check this process passes. */
export function hasNativeCheck(record: OwnedRecord): boolean {
  return Boolean(record.check?.http || record.check?.tcp)
}

const ms = (value: number): string => `${Math.max(1, Math.round(value))}ms`

/** The agent-service definition of one record, owner in its meta. */
export function serviceDefinition(record: OwnedRecord, health: Health): ServiceDefinition {
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

  return {
    ...base,
    check: {
      name: 'svc heartbeat',
      checkid: ttlCheckId(id),
      notes: 'passed by the svc process that registered the service',
      ttl: ms(record.ttlMs),
      timeout: ms(record.ttlMs),
      status: consulStatus(health),
      // the copy left behind on an agent svc moved away from (or that the owner abandoned) does not linger
      deregistercriticalserviceafter: ms(Math.max(MIN_DEREGISTER_AFTER_MS, deregisterAfter ?? 0)),
    },
  }
}
