import {UserError} from '../../errors.js'
import {decodeFields, type RecordFields} from '../core/codec.js'
import {isSkipped, type Owner, type ReadResult, type StoredRecord} from '../core/driver.js'
import type {Health, InstanceSource, ServiceInstance} from '../types.js'

/** The shapes of the Consul answers svc reads (HTTP API, Consul 1.8). */
export interface ConsulCheck {
  CheckID: string
  Status: string
  /** Empty for the node's own checks (serfHealth). */
  ServiceID?: string
}

export interface HealthEntry {
  Node: {Node: string; Address: string}
  Service: {
    ID: string
    Service: string
    Address: string
    Port: number
    Tags: null | string[]
    Meta: null | Record<string, string>
    ModifyIndex?: number
  }
  Checks: ConsulCheck[] | null
}

const META_VALUE_MAX = 512
const META_PAIRS_MAX = 64
const META_KEY_MAX = 128
const CONSUL_META_KEY = /^[\w-]+$/
/** Meta keys svc keeps for itself; a user key that would collide is stored escaped under ESCAPED_PREFIX. */
const RESERVED_PREFIX = 'svc_'
const ESCAPED_PREFIX = 'svc_k_'
const SOURCE_KEYS: Record<keyof InstanceSource, string> = {
  containerId: 'svc_source_container_id',
  containerName: 'svc_source_container_name',
  image: 'svc_source_image',
  host: 'svc_source_host',
}
const OWNER_KEYS: Record<keyof Owner, string> = {host: 'svc_owner_host', pid: 'svc_owner_pid', nonce: 'svc_owner_nonce'}
/** The meta key of the owner's start nonce. */
export const OWNER_NONCE_KEY = OWNER_KEYS.nonce
/**
 * Consul has no `unknown` health: svc stores it as a warning TTL check plus this meta key (a check's output alone
 * would not do: the agent syncs output-only changes only every few minutes).
 */
export const HEALTH_KEY = 'svc_health'
/** The pairs svc itself may need besides the caller's meta: health, owner, source. */
const OWN_PAIRS = 1 + Object.keys(OWNER_KEYS).length
const HEALTH_RANK: Record<Health, number> = {passing: 0, unknown: 1, warning: 2, critical: 3}

export function ttlCheckId(id: string): string {
  return `service:${id}`
}

/** The service name of svc's per-process owner services: hidden from every listing svc makes. */
export const OWNER_SERVICE = 'svc-owner'

/** The alias of the owner's TTL check that carries an instance's liveness. */
export function aliveCheckId(id: string): string {
  return `service:${id}:alive`
}

/** The critical check Consul adds while a service is in maintenance mode. */
export function maintenanceCheckId(id: string): string {
  return `_service_maintenance:${id}`
}

type Json = Record<string, unknown>
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)
const nonEmpty = (v: unknown): v is string => typeof v === 'string' && v.trim() !== ''
/** Addresses nobody can connect to. */
const usableAddress = (v: unknown): v is string => nonEmpty(v) && !['0.0.0.0', '::', '[::]'].includes(v.trim())

/** The service meta svc writes: the caller's meta (escaped where Consul's key rules need it), source, owner. */
export function encodeMeta(instance: ServiceInstance, owner: Owner, unknown: boolean): Record<string, string> {
  const meta: Record<string, string> = {}
  for (const [key, value] of Object.entries(instance.meta)) {
    if (value.length > META_VALUE_MAX) {
      throw new UserError(
        `meta value of "${key}" is ${value.length} characters long`,
        `Consul allows at most ${META_VALUE_MAX} characters in a meta value`,
      )
    }

    const stored = storedMetaKey(key)
    if (stored.length > META_KEY_MAX) {
      throw new UserError(
        `meta key "${key}" is too long for Consul (${stored.length} characters once escaped)`,
        `use at most ${META_KEY_MAX} characters; a key with '.' or starting with svc_ or consul- takes more room`,
      )
    }

    meta[stored] = value
  }

  const source = instance.source
  const own = OWN_PAIRS + (source ? Object.keys(SOURCE_KEYS).length : 0)
  if (Object.keys(meta).length + own > META_PAIRS_MAX) {
    throw new UserError(
      `too many meta keys for Consul (${Object.keys(instance.meta).length})`,
      `use at most ${META_PAIRS_MAX - own}: Consul allows ${META_PAIRS_MAX} meta pairs per service, svc needs ${own}`,
    )
  }

  if (source) {
    for (const field of Object.keys(SOURCE_KEYS) as Array<keyof InstanceSource>) {
      const value = source[field]
      if (value.length > META_VALUE_MAX) {
        throw new UserError(
          `source ${field} is ${value.length} characters long`,
          `Consul allows at most ${META_VALUE_MAX}`,
        )
      }

      meta[SOURCE_KEYS[field]] = value
    }
  }

  Object.assign(meta, ownerMeta(owner))
  if (unknown) meta[HEALTH_KEY] = 'unknown'
  return meta
}

/** The meta pairs that name a record's owner. */
export function ownerMeta(owner: Owner): Record<string, string> {
  return {
    [OWNER_KEYS.host]: owner.host.slice(0, META_VALUE_MAX),
    [OWNER_KEYS.pid]: String(owner.pid),
    [OWNER_KEYS.nonce]: owner.nonce,
  }
}

function storedMetaKey(key: string): string {
  const plain = CONSUL_META_KEY.test(key) && !key.startsWith(RESERVED_PREFIX) && !key.startsWith('consul-')
  return plain ? key : ESCAPED_PREFIX + key.replaceAll('_', '__').replaceAll('.', '_d')
}

function unescapeMetaKey(escaped: string): string | undefined {
  let out = ''
  for (let i = 0; i < escaped.length; i++) {
    const ch = escaped[i]
    if (ch !== '_') {
      out += ch
      continue
    }

    const next = escaped[++i]
    if (next === '_') out += '_'
    else if (next === 'd') out += '.'
    else return undefined
  }

  return out
}

/** Stored meta → the caller's meta, the source, and the owner (other tools' records have none). */
export function decodeMeta(stored: Record<string, string>): {
  meta: Record<string, string>
  source?: InstanceSource
  owner?: Owner
} {
  const meta: Record<string, string> = {}
  const reserved: Record<string, string> = {}
  for (const [key, value] of Object.entries(stored)) {
    if (key.startsWith(ESCAPED_PREFIX)) {
      const original = unescapeMetaKey(key.slice(ESCAPED_PREFIX.length))
      if (original === undefined) reserved[key] = value
      else meta[original] = value
    } else if (key.startsWith(RESERVED_PREFIX)) {
      reserved[key] = value
    } else {
      meta[key] = value
    }
  }

  const containerId = reserved[SOURCE_KEYS.containerId]
  const source =
    containerId === undefined
      ? undefined
      : {
          containerId,
          containerName: reserved[SOURCE_KEYS.containerName] ?? '',
          image: reserved[SOURCE_KEYS.image] ?? '',
          host: reserved[SOURCE_KEYS.host] ?? '',
        }
  const host = reserved[OWNER_KEYS.host]
  const pid = Number(reserved[OWNER_KEYS.pid])
  const nonce = reserved[OWNER_KEYS.nonce]
  const owner = host && nonce && Number.isInteger(pid) && pid > 0 ? {host, pid, nonce} : undefined
  return {meta, ...(source ? {source} : {}), ...(owner ? {owner} : {})}
}

/** Entries with what deregistration and settling read (ids, node names, checks, meta), whatever else they hold. */
export function asEntries(value: unknown): HealthEntry[] {
  if (!Array.isArray(value)) return []
  return value.flatMap((raw: unknown) => {
    if (!isObject(raw) || !isObject(raw.Service) || !isObject(raw.Node)) return []
    const {Service: service, Node: node} = raw
    if (typeof service.ID !== 'string' || typeof service.Service !== 'string') return []
    const tags = stringList(service.Tags)
    const meta = stringRecord(service.Meta)
    const checks = Array.isArray(raw.Checks)
      ? raw.Checks.filter(
          (c: unknown): c is ConsulCheck =>
            isObject(c) && typeof c.Status === 'string' && typeof c.CheckID === 'string',
        )
      : []
    return [
      {
        Node: {
          Node: typeof node.Node === 'string' ? node.Node : '',
          Address: typeof node.Address === 'string' ? node.Address : '',
        },
        Service: {
          ID: service.ID,
          Service: service.Service,
          Address: typeof service.Address === 'string' ? service.Address : '',
          Port: typeof service.Port === 'number' ? service.Port : 0,
          Tags: tags ?? null,
          Meta: meta ?? null,
          ...(typeof service.ModifyIndex === 'number' ? {ModifyIndex: service.ModifyIndex} : {}),
        },
        Checks: checks,
      },
    ]
  })
}

const stringList = (v: unknown): string[] | undefined =>
  Array.isArray(v) && v.every((t: unknown) => typeof t === 'string') ? (v as string[]) : undefined
const stringRecord = (v: unknown): Record<string, string> | undefined =>
  isObject(v) && Object.values(v).every((x) => typeof x === 'string') ? (v as Record<string, string>) : undefined

/**
 * One /v1/health/service entry mapped to the codec's fields: Consul's layout (an empty service address means the
 * node's; health from the checks; svc's source, owner and `unknown` marker in the meta), values unchecked.
 */
function entryFields(raw: Json & {Service: Json; Node: Json}): RecordFields {
  const {Service: service, Node: node} = raw
  const meta = stringRecord(service.Meta ?? {})
  const decoded = meta ? decodeMeta(meta) : undefined
  const checks = raw.Checks ?? []
  const readable =
    Array.isArray(checks) &&
    checks.every((c: unknown) => isObject(c) && typeof c.Status === 'string' && typeof c.CheckID === 'string')
  const address = usableAddress(service.Address) ? service.Address : usableAddress(node.Address) ? node.Address : ''
  return {
    service: service.Service,
    id: service.ID,
    address,
    port: service.Port,
    tags: service.Tags ?? [],
    meta: decoded ? decoded.meta : service.Meta,
    // checks that are not Consul's shape say nothing: the instance reads as unknown
    ...(readable && typeof service.ID === 'string'
      ? {health: aggregateHealth(checks as ConsulCheck[], service.ID, meta?.[HEALTH_KEY] === 'unknown')}
      : {}),
    ...(decoded?.source ? {source: decoded.source} : {}),
    ...(decoded?.owner ? {owner: decoded.owner} : {}),
  }
}

/**
 * A /v1/health/service answer → records, decoded by the one codec; an id registered on several nodes (left
 * behind by a fail-over) counts once: the healthiest, then the newest. Never throws.
 */
export function toRecords(body: unknown): ReadResult[] {
  if (!Array.isArray(body)) return []
  const skipped: ReadResult[] = []
  const best = new Map<string, {record: StoredRecord; modified: number}>()
  for (const raw of body as unknown[]) {
    if (!isObject(raw) || !isObject(raw.Service) || !isObject(raw.Node)) {
      skipped.push({skipped: true, key: 'a health entry', reason: 'it is not a service entry'})
      continue
    }

    const entry = raw as Json & {Service: Json; Node: Json}
    const key = `${shown(entry.Service.Service).slice(0, 128)}/${shown(entry.Service.ID).slice(0, 256)}`
    const result = decodeFields(entryFields(entry), {key})
    if (isSkipped(result)) {
      skipped.push(result)
      continue
    }

    const modified = typeof entry.Service.ModifyIndex === 'number' ? entry.Service.ModifyIndex : 0
    const {service, id, health} = result.instance
    const other = best.get(`${service}\u0000${id}`)
    const better =
      !other ||
      HEALTH_RANK[health] < HEALTH_RANK[other.record.instance.health] ||
      (health === other.record.instance.health && modified > other.modified)
    if (better) best.set(`${service}\u0000${id}`, {record: result, modified})
  }

  return [...[...best.values()].map((b) => b.record), ...skipped]
}

/**
 * Worst of the node's and the service's checks (maintenance shows as a critical check). A service without checks
 * of its own says nothing about its health: unknown, as a record without health reads on every backend.
 */
function aggregateHealth(checks: ConsulCheck[], serviceId: string, unknown: boolean): Health {
  // no check of its own: Consul's answer (the node's checks) stands, as its health API and DNS and registrator-era consumers read it
  let worst: Health = 'passing'
  for (const check of checks) {
    const health: Health =
      check.Status === 'passing'
        ? 'passing'
        : check.Status === 'critical'
          ? 'critical'
          : unknown && check.CheckID === ttlCheckId(serviceId)
            ? 'unknown'
            : 'warning'
    if (HEALTH_RANK[health] > HEALTH_RANK[worst]) worst = health
  }

  return worst
}

export function consulStatus(health: Health): 'critical' | 'passing' | 'warning' {
  return health === 'passing' ? 'passing' : health === 'critical' ? 'critical' : 'warning'
}

/** A /v1/catalog/services answer → the service names in it, Consul's own left out. */
export function catalogNames(body: unknown): string[] {
  return isObject(body)
    ? Object.keys(body)
        .filter((name) => name !== 'consul' && name !== OWNER_SERVICE)
        .sort()
    : []
}

/** A field of another tool's entry as text for a warning: a string as it is, anything else as JSON, never a throw. */
function shown(value: unknown): string {
  if (typeof value === 'string') return value
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return typeof value
  }
}
