import {NotFoundError} from './errors.js'
import type {Health, Registry, ServiceInstance, ServiceSummary} from './registry/types.js'
import {validateServiceName} from './registry/validate.js'

/** Healthy for lookups: passing or warning, as Consul's DNS interface answers. */
export function isHealthy(health: Health): boolean {
  return health === 'passing' || health === 'warning'
}

export interface ResolveQuery {
  tags?: readonly string[]
  /** Include unhealthy instances too. */
  all?: boolean
}

/** The instances a lookup answers with; a NotFoundError saying whether the service is unknown or only unhealthy. */
export async function resolveInstances(
  registry: Registry,
  service: string,
  query: ResolveQuery = {},
): Promise<ServiceInstance[]> {
  validateServiceName(service)
  const every = await registry.listInstances(service)
  const tags = query.tags ?? []
  const found = every.filter((i) => (query.all || isHealthy(i.health)) && tags.every((t) => i.tags.includes(t)))
  if (found.length > 0) return found
  if (every.length === 0) {
    throw new NotFoundError(
      `no instance of "${service}" is registered on ${registry.description}`,
      'check the name with: svc resolve',
    )
  }

  const tagText = tags.length > 0 ? ` with tag${tags.length > 1 ? 's' : ''} ${tags.join(', ')}` : ''
  const critical = every.filter((i) => i.health === 'critical').length
  throw new NotFoundError(
    `no ${query.all ? 'instance' : 'healthy instance'} of "${service}"${tagText} (${every.length} registered, ${critical} critical)`,
    query.all || tagText
      ? `check the tags with: svc resolve ${service} --all`
      : `see them all with: svc resolve ${service} --all`,
  )
}

export function listServices(registry: Registry): Promise<ServiceSummary[]> {
  return registry.listServices().then((list) => list.sort((a, b) => a.name.localeCompare(b.name)))
}
