import type Dockerode from 'dockerode'

import {networkInterfaces} from 'node:os'

import {quote} from '../errors.js'
import type {Health, InstanceSource} from '../registry/types.js'
import {isAddress} from '../registry/validate.js'
import {planCheck} from './check-plan.js'
import {
  instanceId,
  lookup,
  serviceMeta,
  serviceName,
  serviceSettings,
  type Settings,
  splitTags,
  validTags,
} from './settings.js'
import type {AgentOptions, PlannedService} from './types.js'

// check planning moved to check-plan.ts, SERVICE_ settings to settings.ts; these stay importable from here
export {PRIVATE_PORT_KEY, sanitizeServiceName} from './settings.js'
export {DEFAULT_CHECK_INTERVAL_MS, DEFAULT_CHECK_TIMEOUT_MS, parseGoDuration} from './check-plan.js'
const COMPOSE_SERVICE_LABEL = 'com.docker.compose.service'
const SWARM_TASK_LABEL = 'com.docker.swarm.task.id'
const ADDRESS = /^[\w.:%-]{1,255}$/
/** Docker's inspect output as it may really arrive: any field missing or null. */
type Loose<T> = T extends readonly (infer U)[]
  ? ReadonlyArray<Loose<U> | null | undefined>
  : T extends object
    ? {[K in keyof T]?: Loose<T[K]> | null}
    : T
type Inspect = Loose<
  Dockerode.ContainerInspectInfo & {NetworkSettings: {IPAddress?: string; GlobalIPv6Address?: string}}
>

export interface PlanResult {
  services: PlannedService[]
  /** Settings that were dropped or replaced, one line each, naming the container. */
  warnings: string[]
}

/** A host port binding; `hostIp` is '' for "all addresses". */
export interface PortBinding {
  hostIp: string
  hostPort: number
}

interface Candidate {
  port: number
  protocol: string
  binding?: PortBinding
}

/** The services to register for one container: one per published port (every exposed port with --internal). */
export function planContainer(
  container: Dockerode.ContainerInspectInfo,
  options: AgentOptions,
  hostAddress?: string,
): PlannedService[] {
  return planContainerWithWarnings(container, options, hostAddress).services
}

/** planContainer, plus what it had to drop or replace. */
export function planContainerWithWarnings(
  container: Dockerode.ContainerInspectInfo,
  options: AgentOptions,
  hostAddress?: string,
): PlanResult {
  const c: Inspect = container
  const warningSet = new Set<string>()
  const containerId = str(c.Id) ?? ''
  const containerName = (str(c.Name) ?? '').replace(/^\//, '') || containerId.slice(0, 12) || 'container'
  const warn = (message: string): void => {
    // label keys and container names are the container's own: keep them from breaking the warning's line
    warningSet.add(`${containerName}: ${message}`.replaceAll(/[\n\r\u2028\u2029]/g, ' '))
  }

  let resolvedHost = hostAddress
  const host = (): string => {
    resolvedHost ??= defaultHostAddress()
    return resolvedHost
  }

  if (options.swarm && isSwarmTask(c.Config?.Labels)) return {services: [], warnings: []}
  const settings = serviceSettings(c.Config?.Env, c.Config?.Labels)
  const candidates = candidatePorts(c, options.internal)
  // Registrator counts the ports before IGNORE and --explicit drop any: names stay stable.
  const group = candidates.length > 1
  const image = str(c.Config?.Image) ?? str(c.Image) ?? ''
  const baseName = defaultServiceName(c, containerName)
  const extraTags = validTags(options.tags, '--tags', warn)
  const source = {containerId, containerName, image, host: options.hostname}
  const health = dockerHealth(c.State)

  const ports: PortContext = {
    c,
    options,
    settings,
    group,
    baseName,
    containerName,
    extraTags,
    source,
    health,
    host,
    warn,
  }
  const services: PlannedService[] = []
  const usedIds = new Set<string>()
  for (const candidate of candidates) {
    const planned = planPort(candidate, ports, usedIds)
    if (planned) services.push(planned)
  }

  return {services, warnings: [...warningSet]}
}

/** What every port of one container shares while its services are planned. */
interface PortContext {
  c: Inspect
  options: AgentOptions
  settings: Settings
  group: boolean
  baseName: string
  containerName: string
  extraTags: string[]
  source: InstanceSource
  health: Health | undefined
  host: () => string
  warn: (message: string) => void
}

/** The service for one candidate port; undefined when IGNORE, --explicit or a missing address leaves it out. */
function planPort(candidate: Candidate, ctx: PortContext, usedIds: Set<string>): PlannedService | undefined {
  const {c, options, settings, group, baseName, containerName, extraTags, source, health, host, warn} = ctx
  const {port, protocol} = candidate
  const get = lookup.bind(undefined, settings, port)
  if (get('ignore')?.value) return undefined
  const named = get('name')
  if (options.explicit && !named?.value) return undefined

  const address = dialable(advertisedAddress(c, candidate, options, get('network')?.value, host, warn), port, warn)
  if (address === undefined) return undefined

  const advertisedPort = options.internal ? port : (candidate.binding?.hostPort ?? port)
  const udp = protocol === 'udp'

  const name = serviceName(named, baseName, group, port, warn)
  const id = instanceId(
    get('id'),
    {hostname: options.hostname || address, containerName, port, udp, group},
    usedIds,
    warn,
  )
  const tagSetting = get('tags')
  const tags = validTags(splitTags(tagSetting?.value ?? ''), tagSetting?.source ?? '', warn)
  tags.push(...extraTags)
  if (udp) tags.push('udp')
  const meta = serviceMeta(settings, port, warn)

  const planned: PlannedService = {
    input: {service: name, id, address, port: advertisedPort, tags: [...new Set(tags)], meta, source: {...source}},
  }
  if (health) planned.input.health = health
  const {check, ttlMs} = planCheck(get, address, advertisedPort, warn)
  if (check) planned.check = check
  if (ttlMs !== undefined) planned.ttlMs = ttlMs
  return planned
}

/** `registry:5000/team/api:1.2` → `api`, `busybox@sha256:…` → `busybox`; undefined when nothing is left. */
export function imageBaseName(image: string): string | undefined {
  const withoutDigest = image.trim().split('@')[0] ?? ''
  const last = withoutDigest.slice(withoutDigest.lastIndexOf('/') + 1)
  const name = last.split(':')[0] ?? ''
  return name === '' ? undefined : name
}

/** True when the image reference is an image ID or a bare digest (`sha256:…`, or a hex prefix of the container's image ID). */
export function isImageId(image: string, containerImage?: string): boolean {
  const value = image.trim().toLowerCase()
  if (/^sha256:[\da-f]+$/.test(value) || /^[\da-f]{64}$/.test(value)) return true
  const id = (containerImage ?? '').toLowerCase().replace(/^sha256:/, '')
  return /^[\da-f]{12,64}$/.test(value) && id.startsWith(value)
}

/** The first non-internal IPv4 address of this host; 127.0.0.1 when there is none. */
export function defaultHostAddress(): string {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? []) {
      if (address.family === 'IPv4' && !address.internal) return address.address
    }
  }

  return '127.0.0.1'
}

/** The binding to advertise for one port: the first IPv4 (or all-addresses) binding, else the first IPv6 one. */
export function pickBinding(bindings: readonly PortBinding[]): PortBinding | undefined {
  return bindings.find((b) => !b.hostIp.includes(':')) ?? bindings[0]
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function parsePortKey(key: string): {port: number; protocol: string} | undefined {
  const match = /^(\d{1,5})(?:\/([a-z]+))?$/i.exec(key.trim())
  if (!match) return undefined
  const port = Number(match[1])
  if (port < 1 || port > 65_535) return undefined
  return {port, protocol: (match[2] ?? 'tcp').toLowerCase()}
}

function bindingsOf(value: unknown): PortBinding[] {
  if (!Array.isArray(value)) return []
  const bindings: PortBinding[] = []
  for (const item of value as unknown[]) {
    if (!isRecord(item)) continue
    const hostPort = str(item.HostPort)?.trim() ?? ''
    const portNumber = /^\d{1,5}$/.test(hostPort) ? Number(hostPort) : 0
    if (portNumber < 1 || portNumber > 65_535) continue
    bindings.push({hostIp: (str(item.HostIp) ?? '').trim().replaceAll(/^\[|\]$/g, ''), hostPort: portNumber})
  }

  return bindings
}

/** Every port of the container that may be registered, sorted by port then protocol. */
function candidatePorts(c: Inspect, internal: boolean): Candidate[] {
  const runtime: unknown = c.NetworkSettings?.Ports
  const configured: unknown = c.HostConfig?.PortBindings
  const exposed: unknown = c.Config?.ExposedPorts
  const hostNetwork = c.HostConfig?.NetworkMode === 'host'
  const candidates = new Map<string, Candidate>()
  for (const source of [runtime, exposed, configured]) {
    if (!isRecord(source)) continue
    for (const key of Object.keys(source)) {
      const parsed = parsePortKey(key)
      if (!parsed || candidates.has(`${parsed.port}/${parsed.protocol}`)) continue
      const candidate: Candidate = parsed
      // With --net=host a port is published at its own number (registrator's rule); Docker drops -p there.
      const binding = hostNetwork
        ? {hostIp: '', hostPort: parsed.port}
        : pickBinding(bindingsFor(runtime, configured, key, parsed))
      if (binding) candidate.binding = binding
      if (internal || binding) candidates.set(`${parsed.port}/${parsed.protocol}`, candidate)
    }
  }

  return [...candidates.values()].sort((a, b) => a.port - b.port || a.protocol.localeCompare(b.protocol))
}

/** The runtime bindings (NetworkSettings.Ports) when there are any, else the configured ones (HostConfig.PortBindings). */
function bindingsFor(
  runtime: unknown,
  configured: unknown,
  key: string,
  parsed: {port: number; protocol: string},
): PortBinding[] {
  const keys = [key, `${parsed.port}/${parsed.protocol}`, ...(parsed.protocol === 'tcp' ? [String(parsed.port)] : [])]
  for (const source of [runtime, configured]) {
    if (!isRecord(source)) continue
    for (const k of keys) {
      const bindings = bindingsOf(source[k])
      if (bindings.length > 0) return bindings
    }
  }

  return []
}

function isSpecific(ip: string): boolean {
  return ip !== '' && ip !== '0.0.0.0' && ip !== '::'
}

function advertisedAddress(
  c: Inspect,
  candidate: Candidate,
  options: AgentOptions,
  serviceNetwork: string | undefined,
  host: () => string,
  warn: (m: string) => void,
): string | undefined {
  let address: string | undefined
  if (options.ip) {
    address = options.ip
  } else if (options.internal) {
    address = containerAddress(c, serviceNetwork || options.network, warn)
    if (address === undefined && c.HostConfig?.NetworkMode === 'host') address = host()
    if (address === undefined) {
      warn(`port ${candidate.port}/${candidate.protocol} skipped: the container has no network address`)
      return undefined
    }
  } else {
    const hostIp = candidate.binding?.hostIp ?? ''
    address = isSpecific(hostIp) ? hostIp : host()
  }

  if (!ADDRESS.test(address)) {
    warn(`port ${candidate.port}/${candidate.protocol} skipped: ${quote(address)} is not a usable address`)
    return undefined
  }

  return address
}

/** The container's address for --internal: the named network's, else the only one, else the default bridge's, else the first by name. */
function containerAddress(c: Inspect, wanted: string | undefined, warn: (m: string) => void): string | undefined {
  const settings = c.NetworkSettings
  const networks: Array<[string, string]> = []
  const raw: unknown = settings?.Networks
  if (isRecord(raw)) {
    for (const name of Object.keys(raw).sort()) {
      const network = raw[name]
      if (!isRecord(network)) continue
      const address = str(network.IPAddress) || str(network.GlobalIPv6Address)
      if (address) networks.push([name, address])
    }
  }

  if (wanted) {
    const match = networks.find(([name]) => name === wanted)
    if (match) return match[1]
    warn(
      `network ${quote(wanted)} not found among ${networks.map(([n]) => n).join(', ') || 'no networks'}; using the default`,
    )
  }

  if (networks.length === 1) return networks[0]![1]
  return str(settings?.IPAddress) || str(settings?.GlobalIPv6Address) || networks[0]?.[1]
}

/** Swarm's own label on the containers of its tasks. */
function isSwarmTask(labels: unknown): boolean {
  return isRecord(labels) && str(labels[SWARM_TASK_LABEL]) !== undefined
}

/** Image base name; for an image ID or bare digest the compose service, else the container name (#701). */
function defaultServiceName(c: Inspect, containerName: string): string {
  const image = str(c.Config?.Image) ?? ''
  const base = image !== '' && !isImageId(image, str(c.Image)) ? imageBaseName(image) : undefined
  if (base) return base
  const labels: unknown = c.Config?.Labels
  const compose = isRecord(labels) ? str(labels[COMPOSE_SERVICE_LABEL]) : undefined
  return compose || containerName
}

/** Docker's own view: HEALTHCHECK status (#578), and paused containers are critical. */
function dockerHealth(state: Inspect['State']): Health | undefined {
  if (state?.Paused === true) return 'critical'
  switch (state?.Health?.Status) {
    case 'healthy': {
      return 'passing'
    }

    case 'unhealthy': {
      return 'critical'
    }

    case 'starting': {
      return 'unknown'
    }

    default: {
      return undefined
    }
  }
}

/** The advertised address when every backend can store it and the proxy can dial it; else the port is skipped. */
function dialable(address: string | undefined, port: number, warn: (message: string) => void): string | undefined {
  if (address === undefined || isAddress(address)) return address
  warn(`port ${port} skipped: its address ${quote(address)} is neither an IP address nor a host name`)
  return undefined
}
