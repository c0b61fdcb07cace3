import {UserError} from '../../errors.js'
import {validateServiceName} from '../validate.js'
import type {Owner, ReadResult, StoredRecord} from '../core/driver.js'
import type {Health, InstanceSource, ServiceInstance} from '../types.js'

/** The shapes of the Consul answers svc reads (HTTP API, Consul 1.8). */
export interface ConsulCheck {
  CheckID: string
  Status: string
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

  meta[OWNER_KEYS.host] = owner.host.slice(0, META_VALUE_MAX)
  meta[OWNER_KEYS.pid] = String(owner.pid)
  meta[OWNER_KEYS.nonce] = owner.nonce
  if (unknown) meta[HEALTH_KEY] = 'unknown'
  return meta
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

/**
 * One /v1/health/service entry, checked field by field (other tools write services too): a usable entry, or why
 * not (with what can still be read of it, for deregistration).
 */
export function readEntry(raw: unknown): {entry: HealthEntry} | {reason: string; label: string; partial?: HealthEntry} {
  if (!isObject(raw) || !isObject(raw.Service) || !isObject(raw.Node)) {
    return {reason: 'not a service entry', label: 'an entry'}
  }

  const {Service: service, Node: node} = raw
  if (!nonEmpty(service.ID) || !nonEmpty(service.Service)) {
    return {reason: 'no service name or id', label: nonEmpty(service.ID) ? service.ID : 'an entry'}
  }

  const label = `${service.Service}/${service.ID}`
  const checks = raw.Checks ?? null
  const validChecks =
    checks === null ||
    (Array.isArray(checks) &&
      checks.every((c: unknown) => isObject(c) && typeof c.Status === 'string' && typeof c.CheckID === 'string'))
  const tags = service.Tags ?? null
  const validTags = tags === null || (Array.isArray(tags) && tags.every((t: unknown) => typeof t === 'string'))
  const meta = service.Meta ?? null
  const validMeta = meta === null || (isObject(meta) && Object.values(meta).every((v) => typeof v === 'string'))
  const entry: HealthEntry = {
    Node: {
      Node: typeof node.Node === 'string' ? node.Node : '',
      Address: typeof node.Address === 'string' ? node.Address : '',
    },
    Service: {
      ID: service.ID,
      Service: service.Service,
      Address: typeof service.Address === 'string' ? service.Address : '',
      Port: typeof service.Port === 'number' ? service.Port : 0,
      Tags: validTags ? (tags as null | string[]) : null,
      Meta: validMeta ? (meta as null | Record<string, string>) : null,
      ...(typeof service.ModifyIndex === 'number' ? {ModifyIndex: service.ModifyIndex} : {}),
    },
    Checks: validChecks ? (checks as ConsulCheck[] | null) : null,
  }
  let reason: string | undefined
  if (!validMeta) reason = 'meta that is not strings'
  else if (!validTags) reason = 'tags that are not strings'
  else if (!validChecks) reason = 'checks svc cannot read'
  if (reason !== undefined) return {reason, label, partial: entry}
  // Consul's rule: an empty service address means the node's
  if (!usableAddress(service.Address) && usableAddress(node.Address)) entry.Service.Address = node.Address
  return {entry}
}

/** Entries with what deregistration and settling read (ids, node names, checks), whatever else they lack. */
export function asEntries(value: unknown): HealthEntry[] {
  if (!Array.isArray(value)) return []
  return value.flatMap((raw: unknown) => {
    const read = readEntry(raw)
    return 'entry' in read ? [read.entry] : read.partial ? [read.partial] : []
  })
}

/**
 * A /v1/health/service answer → records; an id registered on several nodes (left behind by a fail-over) counts
 * once: the healthiest, then the newest. Entries svc cannot map are passed on as skipped (never throws).
 */
export function toRecords(body: unknown): ReadResult[] {
  if (!Array.isArray(body)) return []
  const skipped: ReadResult[] = []
  const best = new Map<string, {record: StoredRecord; modified: number}>()
  for (const raw of body as unknown[]) {
    const read = readEntry(raw)
    if (!('entry' in read)) {
      skipped.push({skipped: true, key: read.label, reason: read.reason})
      continue
    }

    const record = toRecord(read.entry)
    const modified = read.entry.Service.ModifyIndex ?? 0
    const {service, id, health} = record.instance
    const key = `${service}\u0000${id}`
    const other = best.get(key)
    const better =
      !other ||
      HEALTH_RANK[health] < HEALTH_RANK[other.record.instance.health] ||
      (health === other.record.instance.health && modified > other.modified)
    if (better) best.set(key, {record, modified})
  }

  return [...[...best.values()].map((b) => b.record), ...skipped]
}

function toRecord(entry: HealthEntry): StoredRecord {
  const {Node: node, Service: service} = entry
  const {meta, source, owner} = decodeMeta(service.Meta ?? {})
  const instance: ServiceInstance = {
    service: service.Service,
    id: service.ID,
    address: service.Address || node.Address,
    port: service.Port,
    tags: [...(service.Tags ?? [])],
    meta,
    health: aggregateHealth(entry.Checks ?? [], service.ID, service.Meta?.[HEALTH_KEY] === 'unknown'),
  }
  if (source) instance.source = source
  return owner ? {instance, owner} : {instance}
}

/** Worst of the node's and the service's checks (maintenance shows as a critical check); no checks: passing. */
function aggregateHealth(checks: ConsulCheck[], serviceId: string, unknown: boolean): Health {
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

/**
 * A /v1/catalog/services answer → the names svc can query, and the others (another tool's `a/b`) as skipped
 * records, so that they get one warning and never break a listing.
 */
export function serviceNames(body: unknown): {usable: string[]; skipped: ReadResult[]} {
  const names = isObject(body) ? Object.keys(body).filter((name) => name !== 'consul') : []
  const usable: string[] = []
  const skipped: ReadResult[] = []
  for (const name of names.sort()) {
    try {
      usable.push(validateServiceName(name))
    } catch (error) {
      skipped.push({
        skipped: true,
        key: `service ${JSON.stringify(name.slice(0, 60))}`,
        reason: (error as Error).message,
      })
    }
  }

  return {usable, skipped}
}
