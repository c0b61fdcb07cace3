import {quote} from '../../errors.js'
import type {InstanceSource} from '../../registry/types.js'
import {isAddress} from '../../registry/validate.js'
import {planCheck} from '../check-plan.js'
import {
  instanceId,
  lookup,
  serviceMeta,
  serviceName,
  serviceSettings,
  type Settings,
  splitTags,
  SWARM_SERVICE_KEY,
  validTags,
} from '../settings.js'
import type {AgentOptions, PlannedService} from '../types.js'
import type {SwarmNode, SwarmPort, SwarmService, SwarmState, SwarmTask} from './source.js'

export interface SwarmPlan {
  services: PlannedService[]
  /** Settings that were dropped, one line each, naming the Swarm service. */
  warnings: string[]
}

/** One published port of a service, by its container-side port. */
interface Published {
  target: number
  protocol: string
  mode: 'ingress' | 'host'
  /** Ingress: the port every node answers on; host mode: each task has its own (see tasks). */
  published?: number
}

/** Where one instance of one port answers. */
interface Endpoint {
  address: string
  port: number
  /** The node's host name, and the task (`web.2`) or service it is, for ids and `source`. */
  node: string
  name: string
  containerId: string
}

/** What the ports of one service share while their instances are planned. */
interface ServiceContext {
  service: SwarmService
  name: string
  settings: Settings
  group: boolean
  tasks: SwarmTask[]
  nodes: Map<string, SwarmNode>
  options: AgentOptions
  warn: (message: string) => void
}

/**
 * The instances of every Swarm service's published ports. Ingress ports: one instance per ready node (the routing
 * mesh answers on each), or one at --ip, while the service has a running task. Host-mode ports: one instance per
 * running task, at its node's address and the port Docker published for it.
 */
export function planSwarm(state: SwarmState, options: AgentOptions): SwarmPlan {
  const warnings = new Set<string>()
  const nodes = new Map(state.nodes.filter((n) => n.ID).map((n) => [n.ID!, n]))
  const services: PlannedService[] = []
  for (const service of state.services) {
    const name = service.Spec?.Name ?? service.ID ?? ''
    if (name === '') continue
    const warn = warner(name, warnings)

    const container = service.Spec?.TaskTemplate?.ContainerSpec
    // env, then the task's container labels, then the service's own labels: the service's win
    const settings = serviceSettings(container?.Env, {...container?.Labels, ...service.Spec?.Labels})
    const ports = publishedPorts(service.Endpoint?.Ports ?? [])
    const tasks = state.tasks.filter((t) => t.ServiceID === service.ID && t.Status?.State === 'running')
    const context: ServiceContext = {service, name, settings, group: ports.length > 1, tasks, nodes, options, warn}
    const used = new Set<string>()
    for (const port of ports) services.push(...planPort(port, context, used))
  }

  return {services, warnings: [...warnings]}
}

/** Warnings of one service; names and labels are the user's: they must not break the warning's line. */
function warner(name: string, warnings: Set<string>): (message: string) => void {
  return (message) => warnings.add(`service ${name}: ${message}`.replaceAll(/[\n\r\u2028\u2029]/g, ' '))
}

/** True when every service runs the tasks it asks for: no task is still starting, none is missing. */
export function converged(state: SwarmState): boolean {
  if (state.tasks.some((t) => t.Status?.State !== 'running')) return false
  return state.services.every((service) => {
    const replicas = service.Spec?.Mode?.Replicated?.Replicas
    if (replicas === undefined) return true
    return state.tasks.filter((t) => t.ServiceID === service.ID).length === replicas
  })
}

function planPort(port: Published, ctx: ServiceContext, used: Set<string>): PlannedService[] {
  const {settings, options, warn} = ctx
  const get = lookup.bind(undefined, settings, port.target)
  if (get('ignore')?.value) return []
  const named = get('name')
  if (options.explicit && !named?.value) return []
  const custom = get('id')
  if (custom?.value) warn(`${custom.source} ignored: each task of a Swarm service needs an id of its own`)

  const udp = port.protocol === 'udp'
  const service = serviceName(named, ctx.name, ctx.group, port.target, warn)
  const tagSetting = get('tags')
  const tags = validTags(splitTags(tagSetting?.value ?? ''), tagSetting?.source ?? '', warn)
  tags.push(...validTags(options.tags, '--tags', warn))
  if (udp) tags.push('udp')
  const meta = {...serviceMeta(settings, port.target, warn), [SWARM_SERVICE_KEY]: ctx.name}
  const image = ctx.service.Spec?.TaskTemplate?.ContainerSpec?.Image ?? ''

  const planned: PlannedService[] = []
  for (const at of endpoints(port, ctx)) {
    const id = instanceId(
      undefined,
      {hostname: at.node, containerName: at.name, port: at.port, udp, group: false},
      used,
      warn,
    )
    const source: InstanceSource = {containerId: at.containerId, containerName: at.name, image, host: options.hostname}
    const plan: PlannedService = {
      input: {service, id, address: at.address, port: at.port, tags: [...new Set(tags)], meta: {...meta}, source},
    }
    const {check, ttlMs} = planCheck(get, at.address, at.port, warn)
    if (check) plan.check = check
    if (ttlMs !== undefined) plan.ttlMs = ttlMs
    planned.push(plan)
  }

  return planned
}

/** The address and port of each instance of one published port. */
function endpoints(port: Published, ctx: ServiceContext): Endpoint[] {
  const {options, nodes, tasks, warn} = ctx
  const serviceId = ctx.service.ID ?? ''
  if (port.mode === 'ingress') {
    if (port.published === undefined || tasks.length === 0) return []
    const where = options.ip
      ? [{node: options.hostname, address: options.ip}]
      : [...nodes.values()]
          .filter((n) => n.Status?.State === 'ready')
          .map((n) => ({node: n.Description?.Hostname ?? n.ID ?? '', address: n.Status?.Addr ?? ''}))
    return where.flatMap(({node, address}) =>
      usable(address, port, warn)
        ? [{address, port: port.published!, node, name: ctx.name, containerId: serviceId}]
        : [],
    )
  }

  return tasks.flatMap((task) => taskEndpoint(task, port, ctx) ?? [])
}

/** Where one task's host-mode port answers: its node's address (or --ip) and the port Docker published for it. */
function taskEndpoint(task: SwarmTask, port: Published, ctx: ServiceContext): Endpoint | undefined {
  const published = hostPort(task, port)
  const node = ctx.nodes.get(task.NodeID ?? '')
  const address = ctx.options.ip ?? node?.Status?.Addr ?? ''
  if (published === undefined || !usable(address, port, ctx.warn)) return undefined
  return {
    address,
    port: published,
    node: node?.Description?.Hostname ?? task.NodeID ?? '',
    name: `${ctx.name}.${task.Slot ?? task.NodeID ?? task.ID}`,
    containerId: task.Status?.ContainerStatus?.ContainerID ?? task.ID ?? '',
  }
}

/** The host port Docker published this task's port on. */
function hostPort(task: SwarmTask, port: Published): number | undefined {
  const match = (task.Status?.PortStatus?.Ports ?? []).find(
    (p) => p.TargetPort === port.target && (p.Protocol ?? 'tcp') === port.protocol && p.PublishMode === 'host',
  )
  return match?.PublishedPort
}

/** A node address the backends can store and a client can dial; 0.0.0.0 (no --advertise-addr) is neither. */
function usable(address: string, port: Published, warn: (m: string) => void): boolean {
  if (address !== '' && address !== '0.0.0.0' && address !== '::' && isAddress(address)) return true
  warn(
    `port ${port.target}/${port.protocol} skipped on a node whose address is ${quote(address)}: give --ip, or the node an --advertise-addr`,
  )
  return false
}

/** The service's published ports, one per container port and protocol, sorted. */
function publishedPorts(ports: readonly SwarmPort[]): Published[] {
  const found = new Map<string, Published>()
  for (const p of ports) {
    const target = p.TargetPort
    if (target === undefined || target < 1 || target > 65_535) continue
    const protocol = (p.Protocol ?? 'tcp').toLowerCase()
    const key = `${target}/${protocol}`
    if (found.has(key)) continue
    const mode = p.PublishMode === 'host' ? 'host' : 'ingress'
    const published = p.PublishedPort !== undefined && p.PublishedPort > 0 ? p.PublishedPort : undefined
    found.set(key, {target, protocol, mode, ...(published === undefined ? {} : {published})})
  }

  return [...found.values()].sort((a, b) => a.target - b.target || a.protocol.localeCompare(b.protocol))
}
