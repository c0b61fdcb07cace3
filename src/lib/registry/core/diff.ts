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

/** Field by field, tag order ignored: a watch compares every instance of a service it is told about. */
export function sameInstance(a: ServiceInstance, b: ServiceInstance): boolean {
  if (a === b) return true
  return (
    a.id === b.id &&
    a.service === b.service &&
    a.address === b.address &&
    a.port === b.port &&
    a.health === b.health &&
    sameTags(a.tags, b.tags) &&
    sameStrings(a.meta, b.meta) &&
    sameSource(a.source, b.source)
  )
}

function sameTags(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false
  if (a.every((t, i) => t === b[i])) return true
  const x = [...a].sort()
  const y = [...b].sort()
  return x.every((t, i) => t === y[i])
}

function sameStrings(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const keys = Object.keys(a)
  if (keys.length !== Object.keys(b).length) return false
  return keys.every((k) => Object.hasOwn(b, k) && a[k] === b[k])
}

function sameSource(a: ServiceInstance['source'], b: ServiceInstance['source']): boolean {
  if (a === undefined || b === undefined) return a === b
  return (
    a.containerId === b.containerId && a.containerName === b.containerName && a.image === b.image && a.host === b.host
  )
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

// one collator each, built once: localeCompare with options builds one per call (seconds over 10,000 instances)
const plain = new Intl.Collator()
const numeric = new Intl.Collator(undefined, {numeric: true})

export function sortInstances(instances: ServiceInstance[]): ServiceInstance[] {
  return instances.sort(
    (a, b) =>
      plain.compare(a.service, b.service) ||
      numeric.compare(a.address, b.address) ||
      a.port - b.port ||
      plain.compare(a.id, b.id),
  )
}
