import {errorMessage} from '../../errors.js'
import {isRecord} from '../../guards.js'
import {type Health, HEALTH_VALUES, type ServiceInstance} from '../types.js'
import {isInstanceSource, toInstance} from '../validate.js'
import type {Owner, ReadResult, SkippedRecord, StoredRecord} from './driver.js'

/**
 * A record as a driver found it, mapped from its layout to svc's field names; the values are unchecked. The codec
 * applies the same defaults and checks whatever the backend.
 */
export interface RecordFields {
  service?: unknown
  id?: unknown
  address?: unknown
  port?: unknown
  tags?: unknown
  meta?: unknown
  health?: unknown
  source?: unknown
  owner?: unknown
}

/** Where a record lives, and what its location already says about it (a key names its service and id). */
export interface RecordPlace {
  key: string
  service?: string
  id?: string
}

/** The common JSON shape svc stores (etcd values, local files): the instance and its owner. */
export interface RecordJson {
  instance: ServiceInstance
  owner: Owner
}

export function skipped(key: string, reason: string): SkippedRecord {
  return {skipped: true, key, reason}
}

/** One record decoded with the same defaults (missing health reads as unknown) and checks on every backend. */
export function decodeFields(fields: RecordFields, place: RecordPlace): ReadResult {
  const problem = fieldProblem(fields)
  if (problem) return skipped(place.key, problem)
  let instance: ServiceInstance
  try {
    instance = toInstance({
      service: fields.service as string,
      id: fields.id as string | undefined,
      address: fields.address as string,
      port: fields.port as number,
      tags: (fields.tags ?? []) as string[],
      meta: (fields.meta ?? {}) as Record<string, string>,
      health: (fields.health ?? 'unknown') as Health,
      ...(isInstanceSource(fields.source) ? {source: {...fields.source}} : {}),
    })
  } catch (error) {
    return skipped(place.key, `it holds an invalid instance (${errorMessage(error)})`)
  }

  if (
    (place.service !== undefined && instance.service !== place.service) ||
    (place.id !== undefined && instance.id !== place.id)
  ) {
    return skipped(
      place.key,
      `it holds instance ${instance.id} of service ${instance.service}, which belongs elsewhere`,
    )
  }

  const owner = decodeOwner(fields.owner)
  if (owner === 'invalid') return skipped(place.key, 'its owner is not a host, a pid and a nonce')
  const record: StoredRecord = {instance}
  if (owner) record.owner = owner
  return record
}

/** Decodes the common JSON shape; `text` is what the backend holds at `place.key`. */
export function decodeJson(text: string, place: RecordPlace): ReadResult {
  const data = parseJson(text, place)
  return 'skipped' in data ? data : decodeJsonValue(data.value, place)
}

/** The JSON value of a record's text, or why it has none. */
export function parseJson(text: string, place: RecordPlace): {value: unknown} | SkippedRecord {
  try {
    return {value: JSON.parse(text) as unknown}
  } catch {
    return skipped(place.key, text.trim() === '' ? 'it is empty (an interrupted write?)' : 'it is not JSON')
  }
}

/** Decodes the common JSON shape, already parsed. */
export function decodeJsonValue(data: unknown, place: RecordPlace): ReadResult {
  if (!isRecord(data) || !isRecord(data.instance)) return skipped(place.key, 'it is not an svc record')
  return decodeFields({...data.instance, owner: data.owner}, place)
}

/** The common JSON shape of an instance and its owner. */
export function encodeJson(instance: ServiceInstance, owner: Owner, extra: Record<string, unknown> = {}): string {
  const body: Record<string, unknown> & RecordJson = {instance, owner, ...extra}
  return JSON.stringify(body)
}

function fieldProblem(fields: RecordFields): string | undefined {
  const {service, id, address, port, tags, meta, health, source} = fields
  if (typeof service !== 'string') return 'it has no service name'
  if (id !== undefined && typeof id !== 'string') return 'its id is not a string'
  if (typeof address !== 'string') return 'it has no address'
  if (typeof port !== 'number') return 'its port is not a number'
  if (tags !== undefined && !(Array.isArray(tags) && tags.every((t) => typeof t === 'string'))) {
    return 'its tags are not strings'
  }

  if (meta !== undefined && !(isRecord(meta) && Object.values(meta).every((v) => typeof v === 'string'))) {
    return 'its meta values are not strings'
  }

  if (health !== undefined && !(HEALTH_VALUES as readonly unknown[]).includes(health)) {
    return `its health ${JSON.stringify(health).slice(0, 40)} is not one of ${HEALTH_VALUES.join(', ')}`
  }

  if (source !== undefined && !isInstanceSource(source)) return 'its source is not a container, an image and a host'
  return undefined
}

function decodeOwner(value: unknown): Owner | undefined | 'invalid' {
  if (value === undefined || value === null) return undefined
  if (!isRecord(value)) return 'invalid'
  const {host, pid, nonce} = value
  if (typeof host !== 'string' || typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0) return 'invalid'
  // records of svc versions before the nonce carry host and pid only
  if (nonce !== undefined && typeof nonce !== 'string') return 'invalid'
  return {host, pid, nonce: nonce ?? ''}
}
