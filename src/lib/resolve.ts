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

export async function resolveInstances(
  registry: Registry,
  service: string,
  query: ResolveQuery = {},
): Promise<ServiceInstance[]> {
  validateServiceName(service)
  const instances = await registry.listInstances(service)
  const tags = query.tags ?? []
  return instances.filter((i) => (query.all || isHealthy(i.health)) && tags.every((t) => i.tags.includes(t)))
}

export function listServices(registry: Registry): Promise<ServiceSummary[]> {
  return registry.listServices().then((list) => list.sort((a, b) => a.name.localeCompare(b.name)))
}
