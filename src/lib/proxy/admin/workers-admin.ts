import {AggregatorRegistry, Gauge, type PrometheusContentType, Registry} from 'prom-client'

import {type MetricsServer, serveMetrics} from '../../metrics/server.js'
import type {HostPort} from '../../registry/spec.js'
import {INSTANCES_METRIC} from '../metrics.js'
import type {RunningPrimary} from '../workers.js'
import {type MergedRouteView, mergeRoutes} from './merge-routes.js'
import {ROUTE_PAGE} from './page.js'
import {type WorkerState, WorkerStates} from './worker-states.js'

/** How long a worker may take to answer; one that is slower is left out of that answer. */
const ASK_TIMEOUT_MS = 2000

/**
 * The admin endpoints of `svc proxy --workers N`, served by the primary for the whole proxy: `/metrics` merges
 * every worker's registry with prom-client's AggregatorRegistry.aggregate, `/routes` merges their route views,
 * `/healthz` is 200 while all N answer.
 */
export async function serveWorkersAdmin(
  primary: Pick<RunningPrimary, 'ready' | 'workers'>,
  at: HostPort,
): Promise<MetricsServer> {
  const states = new WorkerStates(ASK_TIMEOUT_MS)
  const exposition = {
    contentType: Registry.PROMETHEUS_CONTENT_TYPE,
    async metrics(): Promise<string> {
      const answers = await states.ask(primary.ready(), {metrics: true, routes: true})
      return wholeProxyMetrics(answers, primary.workers).metrics()
    },
  }
  let server: MetricsServer
  try {
    server = await serveMetrics(exposition, at.host, at.port, {
      json: {
        async '/routes'() {
          const answers = await states.ask(primary.ready(), {routes: true})
          if (answers.length === 0) throw new Error(`none of the ${primary.workers} workers answered`)
          return mergeRoutes(answers.map((a) => a.routes ?? []))
        },
      },
      html: {'/': () => ROUTE_PAGE},
      async health() {
        const up = (await states.ask(primary.ready(), {})).length
        return up === primary.workers ? {ok: true} : {ok: false, detail: `${up} of ${primary.workers} workers up`}
      },
      what: 'serve the admin endpoints',
      flag: '--admin-listen',
    })
  } catch (error) {
    states.close()
    throw error
  }

  return {
    ...server,
    async close() {
      states.close()
      await server.close()
    },
  }
}

/**
 * The workers' registries merged (counters and histograms summed, gauges by each metric's aggregator), plus what
 * only the whole proxy knows: instances by merged state, and how many workers answered.
 */
export function wholeProxyMetrics(answers: readonly WorkerState[], workers: number): Registry {
  const merged = AggregatorRegistry.aggregate<PrometheusContentType>(
    answers.flatMap((a) => (a.metrics === undefined ? [] : [a.metrics])),
  )
  const own = new Registry()
  const instances = new Gauge({...INSTANCES_METRIC, registers: [own]})
  for (const [service, state, n] of instanceCounts(mergeRoutes(answers.map((a) => a.routes ?? [])))) {
    instances.set({service, state}, n)
  }

  const up = new Gauge({
    name: 'svc_proxy_workers',
    help: 'Workers of svc proxy --workers N, by state: up (answered this scrape) or down.',
    labelNames: ['state'] as const,
    registers: [own],
  })
  up.set({state: 'up'}, answers.length)
  up.set({state: 'down'}, Math.max(0, workers - answers.length))
  return Registry.merge([merged, own])
}

function* instanceCounts(services: readonly MergedRouteView[]): Generator<[string, string, number]> {
  for (const service of services) {
    const counts = {'in-rotation': 0, ejected: 0, unhealthy: 0}
    for (const instance of service.instances) counts[instance.state]++
    for (const [state, n] of Object.entries(counts)) yield [service.service, state, n]
  }
}
