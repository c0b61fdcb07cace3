import {type PickStrategy, pickInstance, PICK_STRATEGIES} from './balancer/pick.js'
import {NotFoundError, quote, UserError} from './errors.js'
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

/** `address:port` as a client dials it: an IPv6 address in brackets. */
export function dialTarget(instance: ServiceInstance): string {
  return `${instance.address.includes(':') ? `[${instance.address}]` : instance.address}:${instance.port}`
}

/** The instance `--pick` answers with; round-robin keeps its place in svc's state directory. */
export async function pickOne(
  instances: readonly ServiceInstance[],
  strategy: PickStrategy,
  stateDir: string,
): Promise<ServiceInstance> {
  const picked = await pickInstance(instances, strategy, stateDir)
  if (!picked) throw new NotFoundError('no instance to pick from', 'drop --pick to see what is registered')
  return picked
}

// flags of `svc resolve` that take no value: what follows them may be the service name
const SWITCHES = new Set(['--all', '--help', '--json', '-h'])

/**
 * `--pick` takes an optional strategy: a bare `--pick` means random. A word after it that is no strategy is the
 * service name when none came before, else a mistyped strategy, refused with the list.
 */
export function withPickDefault(argv: readonly string[]): string[] {
  const out: string[] = []
  let named = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const previous = argv[i - 1]
    if (!arg.startsWith('-') && (previous === undefined || !takesValue(previous))) named = true
    out.push(arg)
    if (arg !== '--pick') continue
    const next = argv[i + 1]
    if (next !== undefined && (PICK_STRATEGIES as readonly string[]).includes(next)) {
      out.push(next)
      i++
      continue
    }

    if (next !== undefined && !next.startsWith('-') && named) {
      throw new UserError(
        `unknown --pick strategy ${quote(next)}`,
        `use one of: ${PICK_STRATEGIES.join(', ')} (a bare --pick is random)`,
      )
    }

    out.push('random')
  }

  return out
}

function takesValue(arg: string): boolean {
  return arg.startsWith('-') && !arg.includes('=') && !SWITCHES.has(arg) && arg !== '--pick'
}
