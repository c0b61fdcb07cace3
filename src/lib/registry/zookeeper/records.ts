import {errorMessage} from '../../errors.js'
import {isRecord} from '../../guards.js'
import type {Owner, ReadResult} from '../core/driver.js'
import {HEALTH_VALUES, type Health, type InstanceSource, type ServiceInstance} from '../types.js'
import {defaultInstanceId, isInstanceSource, toInstance} from '../validate.js'

/** Meta key that names the container-side port, written as registrator's PrivatePort. */
export const PRIVATE_PORT_META = 'private_port'

/** The payload of `<base>/<service>/<address>:<port>`: registrator's fields, then svc's own with the owner. */
interface Payload extends ServiceInstance {
  Name: string
  IP: string
  PublicPort: number
  PrivatePort: number
  ContainerID: string
  Tags: string[]
  Attrs: Record<string, string>
  owner: Owner
}

/** The znode's name for an instance: registrator's layout keys instances by address and port, not by id. */
export function nodeName(instance: Pick<ServiceInstance, 'address' | 'port'>): string {
  return `${instance.address}:${instance.port}`
}

export function encodePayload(instance: ServiceInstance, owner: Owner): Buffer {
  const privatePort = Number(instance.meta[PRIVATE_PORT_META])
  const payload: Payload = {
    Name: instance.service,
    IP: instance.address,
    PublicPort: instance.port,
    PrivatePort: Number.isInteger(privatePort) && privatePort > 0 ? privatePort : instance.port,
    ContainerID: instance.source?.containerId ?? '',
    Tags: instance.tags,
    Attrs: instance.meta,
    id: instance.id,
    service: instance.service,
    address: instance.address,
    port: instance.port,
    tags: instance.tags,
    meta: instance.meta,
    health: instance.health,
    owner,
  }
  if (instance.source) payload.source = instance.source
  return Buffer.from(JSON.stringify(payload))
}

/**
 * Reads svc's payload or registrator's (Name, IP, PublicPort, Tags, Attrs, ContainerID), or the reason it is
 * skipped. The znode's name `<address>:<port>` fills in what the payload lacks; a registrator payload has no
 * owner, so it reads as foreign.
 */
export function decodeZnode(service: string, node: string, key: string, data: Buffer | undefined): ReadResult {
  const skip = (reason: string): ReadResult => ({skipped: true, key, reason})
  let raw: unknown
  try {
    raw = JSON.parse(data?.toString('utf8') ?? '')
  } catch {
    return skip('its payload is not JSON')
  }

  if (!isRecord(raw)) return skip('its payload is not a JSON object')
  const colon = node.lastIndexOf(':')
  const nodePort = /^\d+$/.test(node.slice(colon + 1)) ? Number(node.slice(colon + 1)) : undefined
  const address = text(raw.address) ?? text(raw.IP) ?? (colon > 0 ? node.slice(0, colon) : undefined)
  const port = portOf(raw.port) ?? portOf(raw.PublicPort) ?? portOf(nodePort)
  if (!address || port === undefined) return skip('its payload is JSON without an address and port')
  const health = raw.health ?? 'unknown'
  if (!HEALTH_VALUES.includes(health as Health))
    return skip(`its health ${shown(raw.health)} is not one of ${HEALTH_VALUES.join(', ')}`)
  try {
    const instance = toInstance({
      service,
      id: text(raw.id) ?? text(raw.ID) ?? defaultInstanceId(service, address, port),
      address,
      port,
      tags: strings(raw.tags) ?? strings(raw.Tags) ?? [],
      meta: stringRecord(raw.meta) ?? stringRecord(raw.Attrs) ?? {},
      health: health as Health,
      source: sourceOf(raw.source) ?? containerSource(text(raw.ContainerID)),
    })
    const owner = ownerOf(raw.owner)
    return owner ? {instance, owner} : {instance}
  } catch (error) {
    return skip(errorMessage(error))
  }
}

/** A parsed JSON value for a message; String() would throw on an object such as {"toString": []}. */
function shown(value: unknown): string {
  return JSON.stringify(value) ?? 'undefined'
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined
}

function portOf(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65_535 ? value : undefined
}

function strings(value: unknown): string[] | undefined {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : undefined
}

/** Registrator's Attrs may hold numbers and booleans (SERVICE_* labels); svc's meta holds strings. */
function stringRecord(value: unknown): Record<string, string> | undefined {
  if (!isRecord(value)) return undefined
  const record: Record<string, string> = {}
  for (const [k, v] of Object.entries(value)) {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') record[k] = String(v)
  }

  return record
}

function sourceOf(value: unknown): InstanceSource | undefined {
  if (isInstanceSource(value)) return value
  if (!isRecord(value) || typeof value.containerId !== 'string') return undefined
  return {
    containerId: value.containerId,
    containerName: text(value.containerName) ?? '',
    image: text(value.image) ?? '',
    host: text(value.host) ?? '',
  }
}

function containerSource(containerId: string | undefined): InstanceSource | undefined {
  return containerId ? {containerId, containerName: '', image: '', host: ''} : undefined
}

function ownerOf(value: unknown): Owner | undefined {
  if (!isRecord(value)) return undefined
  const {host, pid, nonce} = value
  if (typeof host !== 'string' || typeof nonce !== 'string' || typeof pid !== 'number' || !Number.isInteger(pid))
    return undefined
  return {host, pid, nonce}
}
