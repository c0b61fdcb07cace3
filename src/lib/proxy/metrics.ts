import {type CounterChild, type HistogramChild, Registry} from '../metrics/prometheus.js'
import type {RouteTable, ServiceRoute} from './routes.js'

/** Proxy latencies: sub-millisecond on loopback, seconds for slow upstreams. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

/** The label value for requests that named no known service (client-chosen names would be unbounded). */
export const UNKNOWN_SERVICE = '(unknown)'

export type UpstreamErrorKind = 'connect' | 'timeout' | 'reset' | 'other'

/** A service's metric children, kept on its route so a request counts without label lookups. */
export class ServiceStats {
  private readonly byCode: Array<CounterChild | undefined> = []

  constructor(
    private readonly metrics: ProxyMetrics,
    readonly service: string,
    readonly duration: HistogramChild,
  ) {}

  request(code: number, seconds: number): void {
    let child = this.byCode[code]
    if (child === undefined) {
      child = this.metrics.requests.labels({service: this.service, code})
      this.byCode[code] = child
    }

    child.value++
    this.duration.observe(seconds)
  }
}

/** The proxy's Prometheus metrics: requests, latency, upstream errors, retries, ejections, instances. */
export class ProxyMetrics {
  readonly registry = new Registry()
  readonly requests = this.registry.counter({
    name: 'svc_proxy_requests_total',
    help: 'Requests answered, by service and HTTP status code.',
    labelNames: ['service', 'code'],
  })

  readonly duration = this.registry.histogram({
    name: 'svc_proxy_request_duration_seconds',
    help: 'Time from a request arriving to its response ending, by service.',
    labelNames: ['service'],
    buckets: LATENCY_BUCKETS,
  })

  readonly upstreamErrors = this.registry.counter({
    name: 'svc_proxy_upstream_errors_total',
    help: 'Failed upstream attempts, by service, instance and kind (connect, timeout, reset, other).',
    labelNames: ['service', 'instance', 'kind'],
  })

  readonly retries = this.registry.counter({
    name: 'svc_proxy_retries_total',
    help: 'Idempotent requests retried on another instance after a failed attempt.',
    labelNames: ['service'],
  })

  readonly ejections = this.registry.counter({
    name: 'svc_proxy_ejections_total',
    help: 'Passive-health ejections, by service and instance.',
    labelNames: ['service', 'instance'],
  })

  readonly inflight = this.registry.gauge({
    name: 'svc_proxy_requests_in_flight',
    help: 'Requests being proxied now.',
  })

  readonly instances = this.registry.gauge({
    name: 'svc_proxy_instances',
    help: 'Instances in the route table, by service and state (in-rotation, ejected, unhealthy).',
    labelNames: ['service', 'state'],
  })

  private readonly unknown: ServiceStats

  constructor(table?: RouteTable) {
    this.unknown = new ServiceStats(this, UNKNOWN_SERVICE, this.duration.labels({service: UNKNOWN_SERVICE}))
    if (table) this.registry.collect(() => this.collectInstances(table))
  }

  /** The stats of `route` (created on first use), or those of unknown services. */
  stats(route: ServiceRoute | undefined): ServiceStats {
    if (route === undefined) return this.unknown
    let stats = route.stats as ServiceStats | undefined
    if (stats === undefined) {
      stats = new ServiceStats(this, route.name, this.duration.labels({service: route.name}))
      route.stats = stats
    }

    return stats
  }

  render(): string {
    return this.registry.metrics()
  }

  private collectInstances(table: RouteTable): void {
    this.instances.reset()
    for (const route of table.services.values()) {
      const counts = {'in-rotation': 0, ejected: 0, unhealthy: 0}
      for (const u of route.upstreams.values()) {
        counts[u.passing ? (u.health.ejectedUntil === 0 ? 'in-rotation' : 'ejected') : 'unhealthy']++
      }

      for (const [state, n] of Object.entries(counts)) this.instances.set({service: route.name, state}, n)
    }
  }
}
