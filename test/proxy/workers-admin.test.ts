import {afterEach, describe, expect, it} from 'vitest'

import {mergeRoutes} from '../../src/lib/proxy/admin/merge-routes.js'
import {routesView} from '../../src/lib/proxy/admin/routes-view.js'
import {wholeProxyMetrics} from '../../src/lib/proxy/admin/workers-admin.js'
import {DEFAULT_PASSIVE_HEALTH} from '../../src/lib/proxy/health.js'
import {ProxyMetrics} from '../../src/lib/proxy/metrics.js'
import {RouteTable, type UpstreamPool} from '../../src/lib/proxy/routes.js'
import type {ServiceInstance} from '../../src/lib/registry/types.js'

const pool: UpstreamPool = {async close() {}, async destroy() {}}

function instance(id: string, port: number, health: ServiceInstance['health'] = 'passing'): ServiceInstance {
  return {service: 'shop', id, address: '127.0.0.1', port, tags: [], meta: {}, health}
}

/** One worker's route table and metrics, fed the same snapshot as every other worker's. */
function worker(instances: ServiceInstance[]): {table: RouteTable; metrics: ProxyMetrics} {
  const table = new RouteTable({
    strategy: 'round-robin',
    createPool: () => pool,
    health: {...DEFAULT_PASSIVE_HEALTH, consecutiveFailures: 1, maxEjectionPercent: 100},
  })
  table.apply({type: 'snapshot', instances})
  return {table, metrics: new ProxyMetrics(table, () => 1)}
}

/** `n` answered requests on instance `id` of the shop service. */
function serve(w: ReturnType<typeof worker>, id: string, n: number): void {
  const stats = w.metrics.stats(w.table.services.get('shop'))
  for (let i = 0; i < n; i++) stats.request(200, 0.002, id)
}

describe('the whole proxy under --workers N', () => {
  const tables: RouteTable[] = []
  afterEach(async () => {
    await Promise.all(tables.splice(0).map((t) => t.close(true)))
  })

  function two(): [ReturnType<typeof worker>, ReturnType<typeof worker>] {
    const instances = [instance('a', 1001), instance('b', 1002), instance('c', 1003, 'critical')]
    const pair: [ReturnType<typeof worker>, ReturnType<typeof worker>] = [worker(instances), worker(instances)]
    tables.push(pair[0].table, pair[1].table)
    return pair
  }

  it('/routes: sums requests and in-flight, and an instance is ejected while any worker ejected it', () => {
    const [w1, w2] = two()
    serve(w1, 'a', 70)
    serve(w2, 'a', 30)
    serve(w2, 'b', 5)
    w1.table.services.get('shop')!.upstreams.get('a')!.inflight = 2
    w2.table.services.get('shop')!.upstreams.get('a')!.inflight = 1
    const route = w2.table.services.get('shop')!
    route.outcome(route.upstreams.get('b')!, true)

    const [shop] = mergeRoutes([routesView(w1.table), routesView(w2.table)])
    expect(shop).toMatchObject({service: 'shop', prefixes: [], available: 1, requests: 105})
    expect(
      shop!.instances.map(({id, state, requests, inflight, ejectedIn, workers}) => ({
        id,
        state,
        requests,
        inflight,
        ejectedIn,
        workers,
      })),
    ).toEqual([
      {id: 'a', state: 'in-rotation', requests: 100, inflight: 3, ejectedIn: 0, workers: 2},
      {id: 'b', state: 'ejected', requests: 5, inflight: 0, ejectedIn: 1, workers: 2},
      {id: 'c', state: 'unhealthy', requests: 0, inflight: 0, ejectedIn: 0, workers: 2},
    ])
    expect(shop!.instances[1]!.ejectedUntil).toBe(routesView(w2.table)[0]!.instances[1]!.ejectedUntil)
  })

  it('/routes: a service or instance only one worker knows yet is kept, counted in the workers that have it', () => {
    const [w1] = two()
    const w2 = worker([instance('a', 1001)])
    tables.push(w2.table)
    const [shop] = mergeRoutes([routesView(w1.table), routesView(w2.table)])
    expect(shop!.instances.map((i) => [i.id, i.workers])).toEqual([
      ['a', 2],
      ['b', 1],
      ['c', 1],
    ])
    expect(mergeRoutes([])).toEqual([])
  })

  it('/metrics: counters and histograms summed, instances from the merged states, workers up and down', async () => {
    const [w1, w2] = two()
    serve(w1, 'a', 70)
    serve(w2, 'a', 30)
    const route = w2.table.services.get('shop')!
    route.outcome(route.upstreams.get('b')!, true)
    w2.metrics.ejections.inc({service: 'shop', instance: 'b'})
    const answers = await Promise.all(
      [w1, w2].map(async (w, i) => ({
        n: i + 1,
        metrics: await w.metrics.registry.getMetricsAsJSON(),
        routes: routesView(w.table),
      })),
    )

    const text = await wholeProxyMetrics(answers, 3).metrics()
    const lines = text.split('\n')
    for (const line of [
      'svc_proxy_requests_total{service="shop",code="200"} 100',
      'svc_proxy_request_duration_seconds_bucket{le="0.0025",service="shop"} 100',
      'svc_proxy_request_duration_seconds_count{service="shop"} 100',
      'svc_proxy_requests_in_flight 2',
      'svc_proxy_ejections_total{service="shop",instance="b"} 1',
      // one snapshot per worker's table: the same change, counted once
      'svc_proxy_route_rebuilds_total 1',
      'svc_proxy_instances{service="shop",state="in-rotation"} 1',
      'svc_proxy_instances{service="shop",state="ejected"} 1',
      'svc_proxy_instances{service="shop",state="unhealthy"} 1',
      'svc_proxy_workers{state="up"} 2',
      'svc_proxy_workers{state="down"} 1',
    ]) {
      expect(lines).toContain(line)
    }

    // one family each, declared once
    expect(lines.filter((l) => l === '# TYPE svc_proxy_instances gauge')).toHaveLength(1)
    expect(lines.filter((l) => l === '# TYPE svc_proxy_requests_total counter')).toHaveLength(1)
  })
})
