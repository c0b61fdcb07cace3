import {HEALTH_VALUES, type Health, type ServiceInstance} from '../registry/types.js'
import {isHealthy} from '../resolve.js'
import type {ServiceState} from './state.js'

/** The options object Handlebars passes last to every helper; `loc` is where the call is in the template. */
export interface HelperCall {
  hash: Record<string, unknown>
  loc?: {start: {line: number; column: number}}
}

/** A helper that failed: the message, and the template line of the call when Handlebars gave it. */
export class HelperError extends Error {
  override name = 'HelperError'
  readonly line?: number

  constructor(message: string, line?: number) {
    super(message)
    this.line = line
  }
}

type Helper = (params: unknown[], call: HelperCall) => unknown

/** What `svc resolve` and the proxy call healthy (isHealthy): passing and warning. */
const DEFAULT_HEALTH: ReadonlySet<Health> = new Set(HEALTH_VALUES.filter((h) => isHealthy(h)))

/** The health values `health=` (or `"name|…"`) names: `any`, or a comma list such as `passing,warning`. */
export function healthFilter(text: string): ReadonlySet<Health> {
  if (text === 'any') return new Set(HEALTH_VALUES)
  const values = text.split(',').map((v) => v.trim())
  const unknown = values.filter((v) => !(HEALTH_VALUES as readonly string[]).includes(v))
  if (unknown.length > 0 || values.length === 0) {
    throw new Error(`health ${JSON.stringify(text)}: write "any" or a comma list of ${HEALTH_VALUES.join(', ')}`)
  }

  return new Set(values as Health[])
}

/**
 * What `service` was asked for: `name`, `tag.name` (consul-template's form) and `name|any` or
 * `name|passing,warning` for the health filter; `tag=` and `health=` hash arguments say the same.
 * A dotted query names a service when one of that name exists (svc names may hold dots), else `tag.name`.
 */
export function serviceQuery(
  query: string,
  hash: Record<string, unknown>,
  state: ServiceState,
): {name: string; tag?: string; health: ReadonlySet<Health>} {
  const bar = query.indexOf('|')
  const head = bar === -1 ? query : query.slice(0, bar)
  const healthText = typeof hash.health === 'string' ? hash.health : bar === -1 ? undefined : query.slice(bar + 1)
  const health = healthText === undefined ? DEFAULT_HEALTH : healthFilter(healthText)
  let name = head
  let tag: string | undefined
  if (!state.has(head)) {
    const dots = [...head.matchAll(/\./g)].map((m) => m.index)
    const split = dots.find((i) => state.has(head.slice(i + 1))) ?? dots[0]
    if (split !== undefined) {
      tag = head.slice(0, split)
      name = head.slice(split + 1)
    }
  }

  if (typeof hash.tag === 'string') tag = hash.tag
  return tag === undefined ? {name, health} : {name, tag, health}
}

/** A dotted path's value in an object (`port`, `meta.zone`); undefined where a step is missing. */
function pick(value: unknown, dotted: string): unknown {
  let current = value
  for (const step of dotted.split('.')) {
    if (current === null || typeof current !== 'object' || !Object.hasOwn(current, step)) return undefined
    current = (current as Record<string, unknown>)[step]
  }

  return current
}

function compareValues(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b
  return String(a ?? '').localeCompare(String(b ?? ''), 'en', {numeric: true})
}

function list(value: unknown, helper: string): unknown[] {
  if (Array.isArray(value)) return value
  throw new Error(
    `${helper} takes a list, such as (service "web"), not ${value === undefined ? 'nothing' : typeof value}`,
  )
}

function text(value: unknown, helper: string, what: string): string {
  if (typeof value === 'string' && value !== '') return value
  throw new Error(`${helper} needs ${what} as a quoted string`)
}

/** The helpers, reading the registry state through `state` at render time. */
export function templateHelpers(state: () => ServiceState): Record<string, Helper> {
  return {
    services(_params, {hash}) {
      const all = state().list()
      return typeof hash.tag === 'string' ? all.filter((s) => s.tags.includes(hash.tag as string)) : all
    },
    service([query], {hash}) {
      const current = state()
      const {name, tag, health} = serviceQuery(text(query, 'service', 'a service name'), hash, current)
      return current
        .instances(name)
        .filter((i) => health.has(i.health) && (tag === undefined || i.tags.includes(tag)))
        .map((i) => ({...i, tags: [...i.tags], meta: {...i.meta}}))
    },
    byTag([instances]) {
      const groups: Record<string, ServiceInstance[]> = {}
      for (const instance of list(instances, 'byTag') as ServiceInstance[]) {
        for (const tag of instance.tags) (groups[tag] ??= []).push(instance)
      }

      return Object.fromEntries(Object.entries(groups).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    },
    sortBy: ([items, field]) =>
      [...list(items, 'sortBy')].sort((a, b) => {
        const key = text(field, 'sortBy', 'a field name')
        return compareValues(pick(a, key), pick(b, key))
      }),
    join: ([items, separator]) => list(items, 'join').join(typeof separator === 'string' ? separator : ','),
    contains: ([items, item]) => list(items, 'contains').includes(item),
    eq: ([a, b]) => a === b,
    default: ([value, fallback]) => (value === undefined || value === null || value === '' ? fallback : value),
    env: ([name]) => process.env[text(name, 'env', 'a variable name')] ?? '',
    toJSON: ([value]) => JSON.stringify(value),
  }
}

/** The helper in the calling convention of Handlebars (params..., options), its errors tagged with the line. */
export function forHandlebars(helper: Helper): (...args: unknown[]) => unknown {
  return (...args) => {
    const call = args.at(-1) as HelperCall
    try {
      return helper(args.slice(0, -1), call)
    } catch (error) {
      throw new HelperError(error instanceof Error ? error.message : String(error), call.loc?.start.line)
    }
  }
}
