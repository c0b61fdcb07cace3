/**
 * What moved between two answers of the two bulk blocking queries a watch of everything holds (fabio's model):
 * /v1/health/state/any (every check: its index moves on any check change) and /v1/catalog/services (names and
 * tags: its index moves on any service change). Only the services named here are read again.
 */

type Json = Record<string, unknown>
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)

/** A check as /v1/health/state/any and /v1/catalog/node list it, reduced to what tells a change. */
export interface CheckLine {
  node: string
  service: string
  line: string
}

/** The checks of a /v1/health/state/any answer; a node's own checks (serfHealth) have service ''. */
export function checkLines(body: unknown): CheckLine[] {
  if (!Array.isArray(body)) return []
  return (body as unknown[]).flatMap((raw) => {
    if (!isObject(raw)) return []
    const service = typeof raw.ServiceName === 'string' ? raw.ServiceName : ''
    const node = typeof raw.Node === 'string' ? raw.Node : ''
    const line = `${String(raw.ServiceID)}\u0000${String(raw.CheckID)}\u0000${String(raw.Status)}\u0000${String(raw.ModifyIndex)}`
    return [{node, service, line}]
  })
}

/** Per service (and per node for node checks), a fingerprint of its checks. */
function fingerprints(lines: readonly CheckLine[]): {services: Map<string, string>; nodes: Map<string, string>} {
  const services = new Map<string, string[]>()
  const nodes = new Map<string, string[]>()
  for (const {node, service, line} of lines) {
    const [map, key] = service === '' ? [nodes, node] : [services, service]
    const list = map.get(key)
    if (list) list.push(line)
    else map.set(key, [line])
  }

  const joined = (m: Map<string, string[]>): Map<string, string> =>
    new Map([...m].map(([k, v]) => [k, v.sort().join('\n')]))
  return {services: joined(services), nodes: joined(nodes)}
}

/** A /v1/catalog/services answer: name -> its tags, sorted. */
export function catalogTags(body: unknown): Map<string, string> {
  const tags = new Map<string, string>()
  if (!isObject(body)) return tags
  for (const [name, value] of Object.entries(body)) {
    const list = Array.isArray(value) ? value.filter((t): t is string => typeof t === 'string') : []
    tags.set(name, [...new Set(list)].sort().join('\u0000'))
  }

  return tags
}

function changedKeys(before: Map<string, string>, after: Map<string, string>): Set<string> {
  const changed = new Set<string>()
  for (const [key, value] of after) if (before.get(key) !== value) changed.add(key)
  for (const key of before.keys()) if (!after.has(key)) changed.add(key)
  return changed
}

/** The last answers' fingerprints, and which services each new answer changes. */
export class ChangeTracker {
  private checks = new Map<string, string>()
  private nodeChecks = new Map<string, string>()
  private tags = new Map<string, string>()

  /** Services whose checks changed; `all` when a node's own check changed (it counts for every service there). */
  health(lines: readonly CheckLine[]): {services: Set<string>; all: boolean} {
    const next = fingerprints(lines)
    const services = changedKeys(this.checks, next.services)
    const all = changedKeys(this.nodeChecks, next.nodes).size > 0
    this.checks = next.services
    this.nodeChecks = next.nodes
    return {services, all}
  }

  /** Services added, removed or whose tags changed. */
  catalog(tags: Map<string, string>): Set<string> {
    const changed = changedKeys(this.tags, tags)
    this.tags = tags
    return changed
  }
}
