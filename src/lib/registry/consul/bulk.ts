import type {Agents} from './agents.js'
import {consulIndex} from './catalog.js'
import {type CheckLine, checkLines} from './changes.js'

type Json = Record<string, unknown>
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)

/** Everything registered, read in a few requests whatever the number of services: one per node, plus the checks. */
export interface BulkState {
  /** Health entries (/v1/health/service's shape) of every service, by service name. */
  entries: Map<string, Json[]>
  /** The checks, and the index of /v1/health/state/any they were read at. */
  lines: CheckLine[]
  healthIndex: bigint
  /** Per service, the highest ModifyIndex of its instances: a change the checks do not show moves it. */
  modified: Map<string, number>
}

/** How far a bulk read got: services read (as the nodes' answers come in) of how many the catalog lists. */
export interface BulkProgress {
  total?: number
  read: number
}

/**
 * The whole catalog as health entries: /v1/health/state/any, /v1/catalog/nodes and one /v1/catalog/node/<name>
 * per node, joined the way /v1/health/service joins them (node, service, the node's checks and the service's).
 */
export async function readBulk(
  agents: Agents,
  agent: number,
  signal: AbortSignal,
  progress: BulkProgress,
): Promise<BulkState> {
  const timeout = agents.options.requestTimeoutMs
  const names = await agents.attempt(
    agent,
    (c, x) => c.catalog.services({...x, ...agents.reads()}),
    timeout,
    signal,
    undefined,
    'watch',
  )
  progress.total = isObject(names) ? Object.keys(names).length : undefined
  progress.read = 0
  const seen = new Set<string>()
  const state = await agents.attemptWithHeaders(
    agent,
    (c, x) => c.health.state({state: 'any', ...x, ...agents.reads()}),
    timeout,
    signal,
    'watch',
  )
  const nodes = await agents.attempt(
    agent,
    (c, x) => c.catalog.node.list({...x, ...agents.reads()}),
    timeout,
    signal,
    undefined,
    'watch',
  )
  const listed = Array.isArray(nodes) ? (nodes as unknown[]).filter((v) => isObject(v)) : []
  const perNode = await Promise.all(
    listed.map(async (n) => {
      const answer = await agents.attempt(
        agent,
        (c, x) => c.catalog.node.services({node: String(n.Node), ...x, ...agents.reads()}),
        timeout,
        signal,
        undefined,
        'watch',
      )
      if (isObject(answer) && isObject(answer.Services)) {
        for (const service of Object.values(answer.Services)) if (isObject(service)) seen.add(String(service.Service))
        progress.read = seen.size
      }

      return answer
    }),
  )
  const {entries, modified} = joinEntries(perNode, groupChecks(state.body))
  return {entries, lines: checkLines(state.body), healthIndex: consulIndex(state.headers) ?? 0n, modified}
}

/** The checks of a /v1/health/state/any answer by node and service id ('' for the node's own). */
function groupChecks(body: unknown): Map<string, Json[]> {
  const checks = new Map<string, Json[]>()
  for (const check of Array.isArray(body) ? (body as unknown[]).filter((v) => isObject(v)) : []) {
    const key = `${String(check.Node)}\u0000${typeof check.ServiceID === 'string' ? check.ServiceID : ''}`
    const list = checks.get(key)
    if (list) list.push(check)
    else checks.set(key, [check])
  }

  return checks
}

/** The nodes' services joined with their checks into health entries, by service name. */
function joinEntries(
  perNode: unknown[],
  checks: Map<string, Json[]>,
): {entries: Map<string, Json[]>; modified: Map<string, number>} {
  const entries = new Map<string, Json[]>()
  const modified = new Map<string, number>()
  for (const answer of perNode) {
    if (!isObject(answer) || !isObject(answer.Node) || !isObject(answer.Services)) continue
    const node = answer.Node
    const own = checks.get(`${String(node.Node)}\u0000`) ?? []
    for (const service of Object.values(answer.Services)) {
      if (!isObject(service) || typeof service.Service !== 'string') continue
      const mine = checks.get(`${String(node.Node)}\u0000${String(service.ID)}`) ?? []
      const entry = {Node: node, Service: service, Checks: [...own, ...mine]}
      const list = entries.get(service.Service)
      if (list) list.push(entry)
      else entries.set(service.Service, [entry])
      const index = typeof service.ModifyIndex === 'number' ? service.ModifyIndex : 0
      modified.set(service.Service, Math.max(modified.get(service.Service) ?? 0, index))
    }
  }

  return {entries, modified}
}

/** The highest ModifyIndex among the instances of a /v1/health/service answer. */
export function modifiedIndex(body: unknown): number {
  if (!Array.isArray(body)) return 0
  let max = 0
  for (const entry of body as unknown[]) {
    if (isObject(entry) && isObject(entry.Service) && typeof entry.Service.ModifyIndex === 'number')
      max = Math.max(max, entry.Service.ModifyIndex)
  }

  return max
}
