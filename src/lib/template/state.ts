import type {ServiceInstance, WatchEvent} from '../registry/types.js'
import {isHealthy} from '../resolve.js'

/** One service as the `services` helper lists it. */
export interface ServiceEntry {
  name: string
  /** Every tag any of its instances carries, sorted. */
  tags: string[]
  instances: number
  healthy: number
}

/** Stable order for instances: address (numbers compared as numbers), then port, then id. */
export function compareInstances(a: ServiceInstance, b: ServiceInstance): number {
  return (
    a.address.localeCompare(b.address, 'en', {numeric: true}) ||
    a.port - b.port ||
    a.id.localeCompare(b.id, 'en', {numeric: true})
  )
}

/** What every service looks like now, kept from one watch of all services (no backend read per render). */
export class ServiceState {
  private readonly services = new Map<string, Map<string, ServiceInstance>>()

  /** Applies one watch event; says whether the instances changed (status events do not). */
  apply(event: WatchEvent): boolean {
    switch (event.type) {
      case 'snapshot': {
        this.services.clear()
        for (const instance of event.instances) this.put(instance)
        return true
      }

      case 'added':
      case 'changed': {
        this.put(event.instance)
        return true
      }

      case 'removed': {
        const instances = this.services.get(event.instance.service)
        instances?.delete(event.instance.id)
        if (instances?.size === 0) this.services.delete(event.instance.service)
        return true
      }

      case 'status': {
        return false
      }
    }
  }

  /** Every service with at least one instance, sorted by name. */
  list(): ServiceEntry[] {
    return [...this.services.entries()]
      .map(([name, byId]) => {
        const instances = [...byId.values()]
        return {
          name,
          tags: [...new Set(instances.flatMap((i) => i.tags))].sort(),
          instances: instances.length,
          healthy: instances.filter((i) => isHealthy(i.health)).length,
        }
      })
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  }

  has(service: string): boolean {
    return this.services.has(service)
  }

  /** The instances of a service in stable order (see compareInstances); empty when it has none. */
  instances(service: string): ServiceInstance[] {
    return [...(this.services.get(service)?.values() ?? [])].sort(compareInstances)
  }

  get instanceCount(): number {
    let n = 0
    for (const byId of this.services.values()) n += byId.size
    return n
  }

  get serviceCount(): number {
    return this.services.size
  }

  private put(instance: ServiceInstance): void {
    let byId = this.services.get(instance.service)
    if (!byId) {
      byId = new Map()
      this.services.set(instance.service, byId)
    }

    byId.set(instance.id, instance)
  }
}
