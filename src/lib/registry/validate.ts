import {isIP} from 'node:net'

import {quote, UserError} from '../errors.js'
import {isRecord} from '../guards.js'
import type {InstanceChanges, InstanceInput, InstanceSource, ServiceInstance} from './types.js'

const NAME = /^[\w.-]{1,128}$/
const ID = /^[\w.:@-]{1,256}$/
// labels of letters, digits, - and _ (Docker and Consul node names use _), dot-separated, at most 253 characters
const HOST_NAME = /^(?=.{1,253}$)[\w-]{1,63}(?:\.[\w-]{1,63})*\.?$/
const META_KEY = /^[A-Za-z_][\w.-]{0,127}$/

export function validateServiceName(name: string): string {
  // "." and ".." would name the registry's own directory or its parent in the local backend and ZooKeeper's paths
  if (name === '.' || name === '..') {
    throw new UserError(`invalid service name ${quote(name)}`, 'use letters, digits, -, _ and ., not just dots')
  }

  if (!NAME.test(name)) {
    const why =
      name.length > 128 ? `is ${name.length} characters long` : 'has characters other than letters, digits, -, _ and .'
    throw new UserError(
      `invalid service name ${quote(name, 40)}: it ${name === '' ? 'is empty' : why}`,
      'use letters, digits, -, _ and ., at most 128 characters',
    )
  }

  return name
}

export function validateInstanceId(id: string): string {
  // "." and ".." break paths and URLs built from the id (Consul answers 301 to /deregister/..)
  if (id === '.' || id === '..') {
    throw new UserError(`invalid instance id ${quote(id)}`, 'use letters, digits, -, _, ., : and @, not just dots')
  }

  if (!ID.test(id)) {
    throw new UserError(
      `invalid instance id ${quote(id)}`,
      'use letters, digits, -, _, ., : and @, at most 256 characters',
    )
  }

  return id
}

export function parsePort(text: string | number): number {
  const port = typeof text === 'number' ? text : /^\d+$/.test(text.trim()) ? Number(text) : Number.NaN
  if (!Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new UserError(`invalid port ${quote(String(text))}`, 'use an integer from 1 to 65535')
  }

  return port
}

function validateMetaKey(key: string): string {
  // assigning __proto__ on a plain object sets its prototype instead of a key: the value would vanish
  if (key === '__proto__') throw new UserError('invalid meta key "__proto__"', 'it is reserved: choose another key')
  if (!META_KEY.test(key)) {
    throw new UserError(
      `invalid meta key ${quote(key)}`,
      'meta keys start with a letter or _ and hold letters, digits, _, - and .',
    )
  }

  return key
}

/** Parses repeated `KEY=VALUE` items into a record. */
export function parseMeta(items: readonly string[]): Record<string, string> {
  const meta: Record<string, string> = {}
  for (const item of items) {
    const eq = item.indexOf('=')
    if (eq <= 0)
      throw new UserError(`malformed --meta ${quote(item)}`, 'write it as KEY=VALUE, e.g. --meta version=1.2')
    meta[validateMetaKey(item.slice(0, eq))] = item.slice(eq + 1)
  }

  return meta
}

export function validateTag(tag: string): string {
  if (tag === '' || tag.length > 256 || /[\s,]/.test(tag)) {
    throw new UserError(
      `invalid tag ${quote(tag)}`,
      'tags are non-empty, at most 256 characters, without spaces or commas',
    )
  }

  return tag
}

/** An IP address or a host name: what every backend's records and the proxy can dial. */
export function isAddress(address: string): boolean {
  return isIP(address) !== 0 || HOST_NAME.test(address)
}

export function validateAddress(address: string): string {
  if (!isAddress(address)) {
    throw new UserError(`invalid address ${quote(address)}`, 'use an IP address or a host name')
  }

  return address
}

export function defaultInstanceId(service: string, address: string, port: number): string {
  return `${service}:${address}:${port}`
}

/** Validates what a caller registers and fills in the defaults. */
export function toInstance(input: InstanceInput): ServiceInstance {
  const service = validateServiceName(input.service)
  const address = validateAddress(input.address)
  const port = parsePort(input.port)
  const id = validateInstanceId(input.id ?? defaultInstanceId(service, address, port))
  const tags = [...new Set((input.tags ?? []).map((t) => validateTag(t)))]
  const meta: Record<string, string> = {}
  for (const [k, v] of Object.entries(input.meta ?? {})) meta[validateMetaKey(k)] = String(v)
  const instance: ServiceInstance = {service, id, address, port, tags, meta, health: input.health ?? 'passing'}
  if (input.source) instance.source = {...input.source}
  return instance
}

/** The instance with validated new tags and/or meta. */
export function applyChanges(instance: ServiceInstance, changes: InstanceChanges): ServiceInstance {
  const next = {...instance}
  if (changes.tags) next.tags = [...new Set(changes.tags.map((t) => validateTag(t)))]
  if (changes.meta) {
    next.meta = {}
    for (const [k, v] of Object.entries(changes.meta)) next.meta[validateMetaKey(k)] = String(v)
  }

  return next
}

/** A stored `source` as svc writes it: four strings. */
export function isInstanceSource(value: unknown): value is InstanceSource {
  return (
    isRecord(value) &&
    typeof value.containerId === 'string' &&
    typeof value.containerName === 'string' &&
    typeof value.image === 'string' &&
    typeof value.host === 'string'
  )
}
