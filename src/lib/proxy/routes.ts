import {instanceWeight} from '../balancer/pick.js'
import {type Balancer, type BalanceStrategy, createBalancer} from '../balancer/strategies.js'
import {UserError} from '../errors.js'
import type {ServiceInstance, WatchEvent} from '../registry/types.js'
import {validateServiceName} from '../registry/validate.js'
import {
  DEFAULT_PASSIVE_HEALTH,
  freshHealth,
  type HealthState,
  mayEject,
  type PassiveHealthOptions,
  recordOutcome,
} from './health.js'

/** An explicit route: requests whose path starts with `prefix` (at a segment boundary) go to `service`. */
export interface RouteSpec {
  prefix: string
  service: string
}

/** Parses `--route PREFIX=SERVICE`, e.g. `/api=api-v2`; the prefix is normalised to `/x/y` (or `/`). */
export function parseRouteSpec(text: string): RouteSpec {
  const eq = text.lastIndexOf('=')
  const hint = 'write it as PREFIX=SERVICE, e.g. --route /api=api-v2'
  if (eq <= 0 || eq === text.length - 1) throw new UserError(`invalid --route "${text}"`, hint)
  let prefix = text.slice(0, eq).trim()
  if (!prefix.startsWith('/')) prefix = `/${prefix}`
  while (prefix.length > 1 && prefix.endsWith('/')) prefix = prefix.slice(0, -1)
  if (/[\s?#]/.test(prefix)) throw new UserError(`invalid --route "${text}": the prefix has a space, ? or #`, hint)
  try {
    return {prefix, service: validateServiceName(text.slice(eq + 1).trim())}
  } catch (error) {
    throw new UserError(`invalid --route "${text}": ${(error as Error).message}`, hint)
  }
}

/** What a connection pool to one upstream must offer; the proxy's ConnectionPool (upstream-pool.ts). */
export interface UpstreamPool {
  close(): Promise<void>
  destroy(): Promise<void>
}

/** One instance in rotation: its pool, its requests in flight, its passive-health state. */
export class Upstream<P extends UpstreamPool = UpstreamPool> {
  readonly id: string
  readonly origin: string
  /** `address:port`, IPv6 in brackets. */
  readonly hostPort: string
  instance: ServiceInstance
  weight: number
  inflight = 0
  readonly health: HealthState = freshHealth()
  timer: NodeJS.Timeout | undefined

  constructor(
    instance: ServiceInstance,
    readonly pool: P,
  ) {
    this.instance = instance
    this.id = instance.id
    this.hostPort = hostPortOf(instance)
    this.origin = `http://${this.hostPort}`
    this.weight = instanceWeight(instance)
  }

  get passing(): boolean {
    return this.instance.health === 'passing'
  }
}

export function hostPortOf(instance: Pick<ServiceInstance, 'address' | 'port'>): string {
  return `${instance.address.includes(':') ? `[${instance.address}]` : instance.address}:${instance.port}`
}

export interface RouteHooks<P extends UpstreamPool> {
  createPool(origin: string, instance: ServiceInstance): P
  onEject?(route: ServiceRoute<P>, upstream: Upstream<P>, ms: number): void
  onReinstate?(route: ServiceRoute<P>, upstream: Upstream<P>): void
  now?(): number
}

/** The instances of one service and the balancer over those in rotation (passing and not ejected). */
export class ServiceRoute<P extends UpstreamPool = UpstreamPool> {
  readonly upstreams = new Map<string, Upstream<P>>()
  balancer: Balancer<Upstream<P>>
  /** What the server keeps per service (its metric children), so the request path skips label lookups. */
  stats: unknown = undefined

  constructor(
    readonly name: string,
    private readonly strategy: BalanceStrategy,
    private readonly hooks: RouteHooks<P>,
    private readonly health: PassiveHealthOptions,
  ) {
    this.balancer = createBalancer<Upstream<P>>(strategy, [])
  }

  /** Instances in rotation. */
  get available(): number {
    return this.balancer.targets.length
  }

  get ejected(): number {
    let n = 0
    for (const u of this.upstreams.values()) if (u.health.ejectedUntil !== 0) n++
    return n
  }

  set(instance: ServiceInstance): void {
    this.upsert(instance)
    this.rebuild()
  }

  /** The service's instances become exactly `instances`, with one balancer rebuild. */
  replace(instances: readonly ServiceInstance[]): void {
    const ids = new Set<string>()
    for (const instance of instances) {
      ids.add(instance.id)
      this.upsert(instance)
    }

    for (const [id, upstream] of this.upstreams) {
      if (ids.has(id)) continue
      this.upstreams.delete(id)
      this.drop(upstream)
    }

    this.rebuild()
  }

  private upsert(instance: ServiceInstance): void {
    const current = this.upstreams.get(instance.id)
    if (current && current.hostPort === hostPortOf(instance)) {
      current.instance = instance
      current.weight = instanceWeight(instance)
    } else {
      if (current) this.drop(current)
      this.upstreams.set(
        instance.id,
        new Upstream(instance, this.hooks.createPool(`http://${hostPortOf(instance)}`, instance)),
      )
    }
  }

  remove(id: string): void {
    const current = this.upstreams.get(id)
    if (!current) return
    this.upstreams.delete(id)
    this.drop(current)
    this.rebuild()
  }

  /** Records a request's outcome for passive health; `failed` is a connection failure or a 5xx. */
  outcome(upstream: Upstream<P>, failed: boolean): void {
    if (!failed && upstream.health.consecutiveFailures === 0) return
    const now = this.hooks.now?.() ?? Date.now()
    const passing = this.passingCount()
    const ms = recordOutcome(
      upstream.health,
      failed,
      now,
      this.upstreams.get(upstream.id) === upstream && mayEject(this.ejected, passing, this.health),
      this.health,
    )
    if (ms === 0) return
    upstream.timer = setTimeout(() => this.reinstate(upstream), ms)
    upstream.timer.unref()
    this.rebuild()
    this.hooks.onEject?.(this, upstream, ms)
  }

  /** Closes every pool (in-flight requests finish first unless `force`). */
  async close(force = false): Promise<void> {
    const all = [...this.upstreams.values()]
    this.upstreams.clear()
    this.rebuild()
    await Promise.allSettled(all.map((u) => this.drop(u, force)))
  }

  private passingCount(): number {
    let n = 0
    for (const u of this.upstreams.values()) if (u.passing) n++
    return n
  }

  private reinstate(upstream: Upstream<P>): void {
    upstream.timer = undefined
    upstream.health.ejectedUntil = 0
    if (this.upstreams.get(upstream.id) !== upstream) return
    this.rebuild()
    this.hooks.onReinstate?.(this, upstream)
  }

  private rebuild(): void {
    const inRotation: Array<Upstream<P>> = []
    for (const u of this.upstreams.values()) if (u.passing && u.health.ejectedUntil === 0) inRotation.push(u)
    this.balancer = createBalancer(this.strategy, inRotation)
  }

  private async drop(upstream: Upstream<P>, force = false): Promise<void> {
    if (upstream.timer) clearTimeout(upstream.timer)
    upstream.timer = undefined
    await (force ? upstream.pool.destroy() : upstream.pool.close()).catch(() => {})
  }
}

/** Where a request goes: the service's route (undefined for an unknown service) and the upstream path. */
export interface RouteMatch<P extends UpstreamPool = UpstreamPool> {
  service: string
  route: ServiceRoute<P> | undefined
  path: string
}

export interface RouteTableOptions<P extends UpstreamPool> extends RouteHooks<P> {
  strategy: BalanceStrategy
  routes?: readonly RouteSpec[]
  hostRouting?: boolean
  health?: PassiveHealthOptions
}

/**
 * The in-memory route table the watch stream keeps current; the request path reads only this. Services stay known
 * once seen (or named by a --route), so a service whose instances all left answers 503, not 404.
 */
export class RouteTable<P extends UpstreamPool = UpstreamPool> {
  readonly services = new Map<string, ServiceRoute<P>>()
  /** Whole-table rebuilds: one per snapshot (a watch start or restart), none per change. */
  rebuilds = 0
  /** Changes applied to one service's route. */
  updates = 0
  private readonly prefixes: Array<{prefix: string; route: ServiceRoute<P>}>
  private readonly hostRouting: boolean
  private readonly health: PassiveHealthOptions

  constructor(private readonly opts: RouteTableOptions<P>) {
    this.hostRouting = opts.hostRouting ?? false
    this.health = opts.health ?? DEFAULT_PASSIVE_HEALTH
    this.prefixes = [...(opts.routes ?? [])]
      .sort((a, b) => b.prefix.length - a.prefix.length)
      .map((r) => ({prefix: r.prefix, route: this.route(r.service)}))
  }

  /** The route of `service`, created empty when it is not known yet. */
  route(service: string): ServiceRoute<P> {
    let route = this.services.get(service)
    if (!route) {
      route = new ServiceRoute(service, this.opts.strategy, this.opts, this.health)
      this.services.set(service, route)
    }

    return route
  }

  apply(event: WatchEvent): void {
    switch (event.type) {
      case 'snapshot': {
        this.rebuilds++
        const byService = new Map<string, ServiceInstance[]>()
        for (const instance of event.instances) {
          const list = byService.get(instance.service)
          if (list) list.push(instance)
          else byService.set(instance.service, [instance])
        }

        for (const [service, instances] of byService) this.route(service).replace(instances)
        for (const route of this.services.values()) {
          if (!byService.has(route.name) && route.upstreams.size > 0) route.replace([])
        }

        return
      }

      case 'added':
      case 'changed': {
        this.updates++
        this.route(event.instance.service).set(event.instance)
        return
      }

      case 'removed': {
        this.updates++
        this.services.get(event.instance.service)?.remove(event.instance.id)
        break
      }

      // status: the table keeps serving what it last knew while the backend reconnects
    }
  }

  /**
   * The route for a request target (origin-form, starting with /) and Host header, or undefined when the target
   * names no service (e.g. `/`).
   */
  match(url: string, host: string | undefined): RouteMatch<P> | undefined {
    if (this.hostRouting && host !== undefined) {
      const route = this.byHost(host)
      if (route) return {service: route.name, route, path: url}
    }

    for (const {prefix, route} of this.prefixes) {
      if (prefix === '/') return {service: route.name, route, path: url}
      if (!url.startsWith(prefix)) continue
      const next = url.codePointAt(prefix.length)
      // a segment boundary: end, /, or ?
      if (next === undefined) return {service: route.name, route, path: '/'}
      if (next === 47) return {service: route.name, route, path: url.slice(prefix.length)}
      if (next === 63) return {service: route.name, route, path: `/${url.slice(prefix.length)}`}
    }

    let end = 1
    while (end < url.length) {
      const c = url.codePointAt(end)
      if (c === 47 || c === 63) break
      end++
    }

    if (end === 1) return undefined
    const service = url.slice(1, end)
    const path = end === url.length ? '/' : url.codePointAt(end) === 47 ? url.slice(end) : `/${url.slice(end)}`
    return {service, route: this.services.get(service), path}
  }

  /** The table as plain data, for /routes. */
  snapshot(): RouteSnapshot[] {
    return [...this.services.values()]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((route) => ({
        service: route.name,
        prefixes: this.prefixes.filter((p) => p.route === route).map((p) => p.prefix),
        available: route.available,
        instances: [...route.upstreams.values()].map((u) => ({
          id: u.id,
          address: u.hostPort,
          health: u.instance.health,
          weight: u.weight,
          inflight: u.inflight,
          state: u.passing ? (u.health.ejectedUntil === 0 ? 'in-rotation' : 'ejected') : 'unhealthy',
          ...(u.health.ejectedUntil === 0 ? {} : {ejectedUntil: new Date(u.health.ejectedUntil).toISOString()}),
        })),
      }))
  }

  async close(force = false): Promise<void> {
    await Promise.allSettled([...this.services.values()].map((r) => r.close(force)))
  }

  private byHost(host: string): ServiceRoute<P> | undefined {
    // `<service>.<anything>`: service names may hold dots, so every dot is a candidate end, shortest first
    let dot = host.indexOf('.')
    while (dot > 0) {
      const route = this.services.get(host.slice(0, dot))
      if (route) return route
      dot = host.indexOf('.', dot + 1)
    }

    return undefined
  }
}

export interface RouteSnapshot {
  service: string
  prefixes: string[]
  available: number
  instances: Array<{
    id: string
    address: string
    health: string
    weight: number
    inflight: number
    state: 'in-rotation' | 'ejected' | 'unhealthy'
    ejectedUntil?: string
  }>
}
