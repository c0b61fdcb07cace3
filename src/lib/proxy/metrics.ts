import {Counter, Gauge, type Registry} from 'prom-client'

import {createRegistry} from '../metrics/registry.js'
import {LatencyCounts, LatencyHistogram} from './latency-histogram.js'
import type {RouteTable, ServiceRoute} from './routes.js'

/** The label value for requests that named no known service (client-chosen names would be unbounded). */
export const UNKNOWN_SERVICE = '(unknown)'

/** The instance gauge; under --workers the primary computes it from the merged routes (admin/workers-admin.ts). */
export const INSTANCES_METRIC = {
  name: 'svc_proxy_instances',
  help: 'Instances in the route table, by service and state (in-rotation, ejected, unhealthy).',
  labelNames: ['service', 'state'] as const,
}

export type UpstreamErrorKind = 'connect' | 'timeout' | 'reset' | 'other'

/**
 * A service's metric state, kept on its route. Requests are counted in a plain array by status code and added to
 * the prom-client counter at each scrape: a counter's inc() builds its label key on every call, 20x the cost.
 */
export class ServiceStats {
  private readonly pending: number[] = []
  /** Requests answered since the start, for the route page's rates. */
  total = 0
  /** Requests each instance served (by instance id), since the start. */
  readonly byInstance = new Map<string, number>()

  readonly duration: LatencyCounts

  constructor(readonly service: string) {
    this.duration = new LatencyCounts(service)
  }

  request(code: number, seconds: number, instance?: string): void {
    this.pending[code] = (this.pending[code] ?? 0) + 1
    this.total++
    if (instance !== undefined) this.byInstance.set(instance, (this.byInstance.get(instance) ?? 0) + 1)
    this.duration.observe(seconds)
  }

  /** Hands the requests counted since the last call to `add`, by status code. */
  flush(add: (code: number, n: number) => void): void {
    for (const [code, n] of this.pending.entries()) {
      if (n === undefined || n === 0) continue
      add(code, n)
      this.pending[code] = 0
    }
  }
}

/** The proxy's Prometheus metrics: requests, latency, upstream errors, retries, ejections, instances. */
export class ProxyMetrics {
  readonly registry: Registry = createRegistry()
  private readonly registers = [this.registry]
  // every ServiceStats handed out, flushed into the requests counter at each scrape
  private readonly services = new Set<ServiceStats>()
  readonly requests = new Counter({
    name: 'svc_proxy_requests_total',
    help: 'Requests answered, by service and HTTP status code.',
    labelNames: ['service', 'code'] as const,
    registers: this.registers,
    collect: () => {
      for (const stats of this.services) stats.flush((code, n) => this.requests.inc({service: stats.service, code}, n))
    },
  })

  readonly duration = new LatencyHistogram({
    name: 'svc_proxy_request_duration_seconds',
    help: 'Time from a request arriving to its response ending, by service.',
    registers: this.registers,
    counts: () => [...this.services].map((stats) => stats.duration),
  })

  readonly upstreamErrors = new Counter({
    name: 'svc_proxy_upstream_errors_total',
    help: 'Failed upstream attempts, by service, instance and kind (connect, timeout, reset, other).',
    labelNames: ['service', 'instance', 'kind'] as const,
    registers: this.registers,
  })

  readonly retries = new Counter({
    name: 'svc_proxy_retries_total',
    help: 'Idempotent requests retried on another instance after a failed attempt.',
    labelNames: ['service'] as const,
    registers: this.registers,
  })

  readonly ejections = new Counter({
    name: 'svc_proxy_ejections_total',
    help: 'Passive-health ejections, by service and instance.',
    labelNames: ['service', 'instance'] as const,
    registers: this.registers,
  })

  private readonly unknown: ServiceStats

  /**
   * @param table the route table the instance gauge is read from at each scrape
   * @param active the number of requests and tunnels in flight, read at each scrape
   */
  constructor(table?: RouteTable, active?: () => number) {
    this.unknown = this.track(new ServiceStats(UNKNOWN_SERVICE))
    this.registry.registerMetric(
      new Gauge({
        name: 'svc_proxy_requests_in_flight',
        help: 'Requests being proxied now.',
        registers: [],
        collect() {
          this.set(active?.() ?? 0)
        },
      }),
    )
    this.registry.registerMetric(
      new Gauge({
        ...INSTANCES_METRIC,
        // every worker's table holds the same instances: a sum would count them N times
        aggregator: 'omit',
        registers: [],
        collect() {
          this.reset()
          if (table) collectInstances(table, (service, state, n) => this.set({service, state}, n))
        },
      }),
    )
    this.routeCounters(table)
  }

  /** The route table's rebuild and update counters, read at each scrape. */
  private routeCounters(table: RouteTable | undefined): void {
    for (const [name, help, read] of [
      ['svc_proxy_route_rebuilds_total', 'Whole route-table rebuilds (one per watch snapshot).', () => table?.rebuilds],
      ['svc_proxy_route_updates_total', 'Changes applied to one service route.', () => table?.updates],
    ] as const) {
      this.registry.registerMetric(
        new Counter({
          name,
          help,
          // every worker follows the same registry: the sum would count each change N times
          aggregator: 'max',
          registers: [],
          collect() {
            this.reset()
            this.inc(read() ?? 0)
          },
        }),
      )
    }
  }

  /** The stats of `route` (created on first use), or those of unknown services. */
  stats(route: ServiceRoute | undefined): ServiceStats {
    if (route === undefined) return this.unknown
    let stats = route.stats as ServiceStats | undefined
    if (stats === undefined) {
      stats = this.track(new ServiceStats(route.name))
      route.stats = stats
    }

    return stats
  }

  private track(stats: ServiceStats): ServiceStats {
    this.services.add(stats)
    return stats
  }

  /** The exposition text. */
  render(): Promise<string> {
    return this.registry.metrics()
  }
}

/** Counts each service's instances by state: in rotation, ejected by passive health, or failing their check. */
function collectInstances(table: RouteTable, set: (service: string, state: string, n: number) => void): void {
  for (const route of table.services.values()) {
    const counts = {'in-rotation': 0, ejected: 0, unhealthy: 0}
    for (const u of route.upstreams.values()) {
      counts[u.passing ? (u.health.ejectedUntil === 0 ? 'in-rotation' : 'ejected') : 'unhealthy']++
    }

    for (const [state, n] of Object.entries(counts)) set(route.name, state, n)
  }
}
