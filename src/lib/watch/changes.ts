import type {ServiceInstance, WatchEvent} from '../registry/types.js'

export type ChangeType = 'added' | 'removed' | 'changed'

/** One line of `svc watch --json`; the snapshot arrives as `added` lines, as `kubectl get -w` does. */
export interface ChangeRecord {
  ts: string
  type: ChangeType
  service: string
  instance: ServiceInstance
  /** On `changed`: the instance before the change. */
  previous?: ServiceInstance
}

/** The change records of one watch event; status events carry none. */
export function toChanges(event: WatchEvent, now = new Date()): ChangeRecord[] {
  const ts = now.toISOString()
  switch (event.type) {
    case 'snapshot': {
      return event.instances.map((instance) => ({ts, type: 'added', service: instance.service, instance}))
    }

    case 'added':
    case 'removed': {
      return [{ts, type: event.type, service: event.instance.service, instance: event.instance}]
    }

    case 'changed': {
      return [
        {ts, type: 'changed', service: event.instance.service, instance: event.instance, previous: event.previous},
      ]
    }

    case 'status': {
      return []
    }
  }
}

/** One human line per change: time, change, service, id, address, health and what differs. */
export function formatChange(record: ChangeRecord, previous = record.previous): string {
  const i = record.instance
  const time = record.ts.slice(11, 23)
  const head = `${time} ${record.type.padEnd(7)} ${i.service} ${i.id} ${i.address}:${i.port} ${i.health}`
  if (record.type === 'changed' && previous) {
    const diff = describeDifference(previous, i)
    return diff ? `${head} (${diff})` : head
  }

  const tags = i.tags.length > 0 ? ` tags=${i.tags.join(',')}` : ''
  return `${head}${tags}`
}

export function describeDifference(before: ServiceInstance, after: ServiceInstance): string {
  const parts: string[] = []
  if (before.health !== after.health) parts.push(`health ${before.health} -> ${after.health}`)
  if (before.address !== after.address || before.port !== after.port) {
    parts.push(`address ${before.address}:${before.port} -> ${after.address}:${after.port}`)
  }

  const tagsBefore = [...before.tags].sort().join(',')
  const tagsAfter = [...after.tags].sort().join(',')
  if (tagsBefore !== tagsAfter) parts.push(`tags ${tagsBefore || '-'} -> ${tagsAfter || '-'}`)
  const keys = new Set([...Object.keys(after.meta), ...Object.keys(before.meta)])
  for (const key of [...keys].sort()) {
    if (before.meta[key] !== after.meta[key]) parts.push(`meta ${key}=${after.meta[key] ?? '(removed)'}`)
  }

  return parts.join(', ')
}
