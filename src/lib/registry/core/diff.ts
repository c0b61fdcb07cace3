import type {ServiceInstance, WatchEvent} from '../types.js'

export type Snapshot = Map<string, ServiceInstance>

export function instanceKey(instance: Pick<ServiceInstance, 'id' | 'service'>): string {
  return `${instance.service}\u0000${instance.id}`
}

export function toSnapshot(instances: Iterable<ServiceInstance>): Snapshot {
  const snapshot: Snapshot = new Map()
  for (const instance of instances) snapshot.set(instanceKey(instance), instance)
  return snapshot
}

function sameInstance(a: ServiceInstance, b: ServiceInstance): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b))
}

function canonical(i: ServiceInstance): unknown[] {
  const meta = Object.entries(i.meta).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return [i.service, i.id, i.address, i.port, [...i.tags].sort(), meta, i.health, i.source ?? null]
}

/** The change events that turn `before` into `after`: removals first, then additions and changes. */
export function diffSnapshots(before: Snapshot, after: Snapshot): WatchEvent[] {
  const events: WatchEvent[] = []
  for (const [key, instance] of before) {
    if (!after.has(key)) events.push({type: 'removed', instance})
  }

  for (const [key, instance] of after) {
    const previous = before.get(key)
    if (!previous) events.push({type: 'added', instance})
    else if (!sameInstance(previous, instance)) events.push({type: 'changed', instance, previous})
  }

  return events
}

export function sortInstances(instances: ServiceInstance[]): ServiceInstance[] {
  return instances.sort(
    (a, b) =>
      a.service.localeCompare(b.service) ||
      a.address.localeCompare(b.address, undefined, {numeric: true}) ||
      a.port - b.port ||
      a.id.localeCompare(b.id),
  )
}
