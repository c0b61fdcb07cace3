/** Registrator's SERVICE_ settings (env and labels): how they are read, and the names, ids, tags and meta they give. */
import {quote} from '../errors.js'
import {UNSUPPORTED_CHECKS} from './check-plan.js'

/**
 * Meta key for the container-side port; equal to the ZooKeeper backend's PRIVATE_PORT_META (a test checks),
 * kept here so that mapping does not load the ZooKeeper driver.
 */
export const PRIVATE_PORT_KEY = 'private_port'
/** Meta key naming the Swarm service an instance was registered from; set by svc, never by a label. */
export const SWARM_SERVICE_KEY = 'swarm_service'
const PREFIX = 'SERVICE_'
const MAX_NAME = 128
const MAX_ID = 256
const META_KEY = /^[A-Za-z_][\w.-]{0,127}$/
/** Keys that configure the registration; every other SERVICE_X becomes meta `x`. */
const RESERVED = new Set([
  'check_deregister_after',
  'check_http',
  'check_https',
  'check_interval',
  'check_tcp',
  'check_timeout',
  'check_ttl',
  'id',
  'ignore',
  'name',
  'network',
  PRIVATE_PORT_KEY,
  'tags',
])

export interface Setting {
  value: string
  /** The variable or label it came from, for messages. */
  source: string
}

export interface Settings {
  generic: Map<string, Setting>
  perPort: Map<number, Map<string, Setting>>
}

export interface Found extends Setting {
  perPort: boolean
}

/** SERVICE_ variables from env and labels (labels win), split into generic and per-port settings. */
export function serviceSettings(env: unknown, labels: unknown): Settings {
  const merged = new Map<string, string>()
  if (Array.isArray(env)) {
    for (const item of env as unknown[]) {
      if (typeof item !== 'string') continue
      const eq = item.indexOf('=')
      if (eq > 0) merged.set(item.slice(0, eq), item.slice(eq + 1))
    }
  }

  if (isRecord(labels)) {
    for (const [key, value] of Object.entries(labels)) if (typeof value === 'string') merged.set(key, value)
  }

  const settings: Settings = {generic: new Map(), perPort: new Map()}
  for (const [source, value] of merged) {
    if (!source.startsWith(PREFIX) || source.length === PREFIX.length) continue
    const key = source.slice(PREFIX.length).toLowerCase()
    const match = /^(\d+)_(.+)$/.exec(key)
    if (match) {
      const port = Number(match[1])
      let forPort = settings.perPort.get(port)
      if (!forPort) settings.perPort.set(port, (forPort = new Map()))
      forPort.set(match[2]!, {value, source})
    } else {
      settings.generic.set(key, {value, source})
    }
  }

  return settings
}

/** SERVICE_<port>_KEY when present (even empty, as registrator), else SERVICE_KEY. */
export function lookup(settings: Settings, port: number, key: string): Found | undefined {
  const own = settings.perPort.get(port)?.get(key)
  if (own) return {...own, perPort: true}
  const generic = settings.generic.get(key)
  return generic ? {...generic, perPort: false} : undefined
}

export function serviceMeta(settings: Settings, port: number, warn: (m: string) => void): Record<string, string> {
  const meta: Record<string, string> = {}
  const add = (key: string, setting: Setting): void => {
    if (key === PRIVATE_PORT_KEY || key === SWARM_SERVICE_KEY) {
      // a container could otherwise pass itself off as a Swarm service's instance, and --cleanup would skip it
      warn(`${setting.source} ignored: ${key} is set by svc`)
    } else if (UNSUPPORTED_CHECKS.includes(key)) {
      warn(`${setting.source} ignored: svc runs HTTP, HTTPS, TCP and TTL checks only`)
    } else if (RESERVED.has(key)) {
      // configures the registration instead
    } else if (META_KEY.test(key) && key !== '__proto__') {
      meta[key] = setting.value
    } else {
      warn(`${setting.source} ignored: ${quote(key)} is not a valid meta key`)
    }
  }

  for (const [key, setting] of settings.generic) add(key, setting)
  for (const [key, setting] of settings.perPort.get(port) ?? []) add(key, setting)
  meta[PRIVATE_PORT_KEY] = String(port)
  return meta
}

export function serviceName(
  named: Found | undefined,
  defaultName: string,
  group: boolean,
  port: number,
  warn: (m: string) => void,
): string {
  const base = named?.value || defaultName
  const suffix = group && !named?.perPort ? `-${port}` : ''
  const name = sanitizeServiceName(base, MAX_NAME - suffix.length) + suffix
  if (named?.value && sanitizeServiceName(named.value) !== named.value)
    warn(
      `${named.source} ${quote(named.value)} registered as ${quote(name, MAX_NAME)}: service names hold letters, digits, -, _ and .`,
    )
  return name
}

/** The instance id for one port, never one that another port of the container has already taken. */
export function instanceId(
  custom: Found | undefined,
  parts: {hostname: string; containerName: string; port: number; udp: boolean; group: boolean},
  used: Set<string>,
  warn: (m: string) => void,
): string {
  const udp = parts.udp ? ':udp' : ''
  const claim = (id: string): string => {
    used.add(id)
    return id
  }

  if (custom?.value) {
    // A generic SERVICE_ID on several ports would give them one id, and each registration would replace the last.
    const id = custom.perPort || !parts.group ? custom.value : `${custom.value}:${parts.port}${udp}`
    if (!/^[\w.:@-]{1,256}$/.test(id)) {
      warn(`${custom.source} ${quote(custom.value)} ignored: ids hold letters, digits, -, _, ., : and @, at most 256`)
    } else if (used.has(id)) {
      // the same id on two ports would make the second registration replace the first
      warn(`${custom.source} ${quote(id)} ignored for port ${parts.port}${udp}: another port of the container has it`)
    } else {
      return claim(id)
    }
  }

  // shortened before the port, never after it: a cut port would give two ports one id
  const suffix = `:${parts.port}${udp}`
  const prefix = `${parts.hostname}:${parts.containerName}`.replaceAll(/[^\w.:@-]/g, '-')
  const fallback = prefix.slice(0, MAX_ID - suffix.length) + suffix
  let id = fallback
  for (let n = 2; used.has(id); n++) id = `${fallback.slice(0, MAX_ID - String(n).length - 1)}-${n}`
  return claim(id)
}

export function splitTags(text: string): string[] {
  return text
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '')
}

export function validTags(tags: readonly string[], source: string, warn: (m: string) => void): string[] {
  return tags.filter((tag) => {
    const ok = tag !== '' && tag.length <= 256 && !/[\s,]/.test(tag)
    if (!ok) warn(`${source} tag ${quote(tag)} ignored: tags are at most 256 characters, without spaces or commas`)
    return ok
  })
}

/** Replaces what a service name cannot hold with '-', and caps it at 128 characters; never "." or "..". */
export function sanitizeServiceName(name: string, max = MAX_NAME): string {
  const sanitized = name.replaceAll(/[^\w.-]/g, '-').slice(0, max)
  // "." and ".." name no service (they are path segments): an image or container named so gets dashes
  return sanitized === '.' || sanitized === '..' ? sanitized.replaceAll('.', '-') : sanitized
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
