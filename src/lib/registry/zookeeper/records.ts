import {isRecord} from '../../guards.js'
import {decodeFields, parseJson, type RecordFields, skipped} from '../core/codec.js'
import type {Owner, ReadResult} from '../core/driver.js'
import type {ServiceInstance} from '../types.js'

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
 * Reads svc's payload or registrator's (Name, IP, PublicPort, Tags, Attrs, ContainerID) through the core's codec,
 * or the reason it is skipped. The znode's name `<address>:<port>` fills in what the payload lacks; a registrator
 * payload has no owner, so it reads as foreign.
 */
export function decodeZnode(service: string, node: string, key: string, data: Buffer | undefined): ReadResult {
  const parsed = parseJson(data?.toString('utf8') ?? '', {key})
  if ('skipped' in parsed) return parsed
  if (!isRecord(parsed.value)) return skipped(key, 'it is not a JSON object')
  return decodeFields(fieldsOf(parsed.value, service, node), {key, service})
}

/** The layout's names for the codec's fields: svc's own first, then registrator's, then the znode's name. */
function fieldsOf(raw: Record<string, unknown>, service: string, node: string): RecordFields {
  const colon = node.lastIndexOf(':')
  const nodePort = node.slice(colon + 1)
  const containerId = typeof raw.ContainerID === 'string' && raw.ContainerID !== '' ? raw.ContainerID : undefined
  return {
    service,
    id: raw.id ?? undefined,
    address: given(raw.address) ?? given(raw.IP) ?? (colon > 0 ? node.slice(0, colon) : undefined),
    port: given(raw.port) ?? given(raw.PublicPort) ?? (/^\d{1,5}$/.test(nodePort) ? Number(nodePort) : undefined),
    // Go writes registrator's nil Tags and Attrs as null
    tags: given(raw.tags) ?? given(raw.Tags),
    meta: given(raw.meta) ?? given(raw.Attrs),
    health: raw.health,
    source: raw.source ?? (containerId ? {containerId, containerName: '', image: '', host: ''} : undefined),
    owner: raw.owner,
  }
}

/** A field that is there: null and the empty string count as absent. */
function given(value: unknown): unknown {
  return value === null || value === '' ? undefined : value
}
