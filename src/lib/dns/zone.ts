import type {Health, ServiceInstance, WatchEvent} from '../registry/types.js'

/** Which health states a DNS answer includes: Consul's default answers warning too (`only_passing` off). */
export type HealthPolicy = 'passing-only' | 'not-critical'

/**
 * Whether an instance is answered. `unknown` (a record that carries no health, such as registrator's) is answered
 * unless only passing ones are asked for: Consul answers a service that has no checks.
 */
export function answered(health: Health, policy: HealthPolicy): boolean {
  if (policy === 'passing-only') return health === 'passing'
  return health !== 'critical'
}

/** Every service's instances, kept current from one registry watch; queries read it, never the backend. */
export class Zone {
  /** By lower-cased service name (DNS names are case-insensitive), then by instance id. */
  private readonly services = new Map<string, Map<string, ServiceInstance>>()

  apply(event: WatchEvent): void {
    switch (event.type) {
      case 'snapshot': {
        this.services.clear()
        for (const instance of event.instances) this.put(instance)
        break
      }

      case 'added':
      case 'changed': {
        if (event.type === 'changed') this.drop(event.previous)
        this.put(event.instance)
        break
      }

      case 'removed': {
        this.drop(event.instance)
        break
      }

      case 'status': {
        break
      }
    }
  }

  /** Whether any instance of the service is registered, healthy or not (an unknown name is NXDOMAIN). */
  has(service: string): boolean {
    return this.services.has(service.toLowerCase())
  }

  /** The answered instances of a service, those carrying `tag` when given (tags compared case-insensitively). */
  instances(service: string, policy: HealthPolicy, tag?: string): ServiceInstance[] {
    const all = this.services.get(service.toLowerCase())
    if (!all) return []
    const wanted = tag?.toLowerCase()
    const out: ServiceInstance[] = []
    for (const instance of all.values()) {
      if (!answered(instance.health, policy)) continue
      if (wanted !== undefined && !instance.tags.some((t) => t.toLowerCase() === wanted)) continue
      out.push(instance)
    }

    return out
  }

  /** Whether some answered instance has this address (the `<hex>.addr.<domain>` names of SRV targets). */
  hasAddress(address: string): boolean {
    for (const all of this.services.values()) {
      for (const instance of all.values()) if (instance.address === address) return true
    }

    return false
  }

  get size(): number {
    let count = 0
    for (const all of this.services.values()) count += all.size
    return count
  }

  private put(instance: ServiceInstance): void {
    const key = instance.service.toLowerCase()
    const all = this.services.get(key) ?? new Map<string, ServiceInstance>()
    all.set(instance.id, instance)
    this.services.set(key, all)
  }

  private drop(instance: ServiceInstance): void {
    const key = instance.service.toLowerCase()
    const all = this.services.get(key)
    if (!all) return
    all.delete(instance.id)
    if (all.size === 0) this.services.delete(key)
  }
}
