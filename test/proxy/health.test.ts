import {afterEach, describe, expect, it, vi} from 'vitest'

import {
  DEFAULT_PASSIVE_HEALTH,
  freshHealth,
  mayEject,
  nextEjectionMs,
  recordOutcome,
  RetryBudget,
} from '../../src/lib/proxy/health.js'
import {parseRouteSpec, RouteTable, type UpstreamPool} from '../../src/lib/proxy/routes.js'
import type {ServiceInstance} from '../../src/lib/registry/types.js'

const opts = {consecutiveFailures: 3, baseEjectionMs: 1000, maxEjectionMs: 8000, maxEjectionPercent: 50}

describe('ejection', () => {
  it('ejects after consecutive failures only, and a success resets the count', () => {
    const s = freshHealth()
    expect(recordOutcome(s, true, 0, true, opts)).toBe(0)
    expect(recordOutcome(s, true, 0, true, opts)).toBe(0)
    expect(recordOutcome(s, false, 0, true, opts)).toBe(0)
    expect(recordOutcome(s, true, 0, true, opts)).toBe(0)
    expect(recordOutcome(s, true, 0, true, opts)).toBe(0)
    expect(recordOutcome(s, true, 100, true, opts)).toBe(1000)
    expect(s.ejectedUntil).toBe(1100)
  })

  it('ejects for a growing time, capped, and forgets after a quiet spell', () => {
    const s = freshHealth()
    const eject = (now: number): number => {
      let ms = 0
      for (let i = 0; i < 3; i++) ms = recordOutcome(s, true, now, true, opts)
      s.ejectedUntil = 0
      return ms
    }

    expect(eject(1000)).toBe(1000)
    expect(eject(3000)).toBe(2000)
    expect(eject(6000)).toBe(4000)
    expect(eject(11_000)).toBe(8000)
    expect(eject(20_000)).toBe(8000)
    // twice the longest ejection without one: back to the base
    expect(nextEjectionMs(s, 20_000 + 16_001, opts)).toBe(1000)
    expect(eject(20_000 + 16_001)).toBe(1000)
  })

  it('never ejects when the service cannot spare the instance', () => {
    const s = freshHealth()
    for (let i = 0; i < 10; i++) expect(recordOutcome(s, true, 0, false, opts)).toBe(0)
  })

  it('caps ejections at the max percent and never the last instance', () => {
    expect(mayEject(0, 1, opts)).toBe(false)
    expect(mayEject(0, 2, opts)).toBe(true)
    expect(mayEject(1, 2, opts)).toBe(false)
    expect(mayEject(1, 4, opts)).toBe(true)
    expect(mayEject(2, 4, opts)).toBe(false)
    expect(mayEject(0, 3, {...opts, maxEjectionPercent: 100})).toBe(true)
    expect(mayEject(2, 3, {...opts, maxEjectionPercent: 100})).toBe(false)
  })
})

const pool = (): UpstreamPool => ({async close() {}, async destroy() {}})
const inst = (port: number): ServiceInstance => ({
  service: 'web',
  id: `web-${port}`,
  address: '127.0.0.1',
  port,
  tags: [],
  meta: {},
  health: 'passing',
})

describe('route ejection', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('takes an ejected instance out of rotation, brings it back after the ejection, and keeps one in', () => {
    vi.useFakeTimers()
    const ejected: string[] = []
    const table = new RouteTable({
      strategy: 'round-robin',
      routes: [parseRouteSpec('/=web')],
      health: opts,
      createPool: pool,
      now: () => Date.now(),
      onEject: (_route, upstream) => ejected.push(upstream.id),
    })
    table.apply({type: 'snapshot', instances: [inst(1), inst(2)]})
    const route = table.services.get('web')!
    const [a, b] = [route.upstreams.get('web-1')!, route.upstreams.get('web-2')!]
    for (let i = 0; i < 3; i++) route.outcome(a, true)
    expect(ejected).toEqual(['web-1'])
    expect(route.balancer.targets).toEqual([b])
    // the other one failing too cannot empty the service
    for (let i = 0; i < 10; i++) route.outcome(b, true)
    expect(route.balancer.targets).toEqual([b])
    vi.advanceTimersByTime(1000)
    expect(route.balancer.targets.map((u) => u.id).sort()).toEqual(['web-1', 'web-2'])
  })
})

describe('retry budget', () => {
  it('allows the minimum per second, plus a share of the traffic', () => {
    const budget = new RetryBudget({ratio: 0.2, minPerSecond: 2})
    expect([budget.tryRetry(), budget.tryRetry(), budget.tryRetry()]).toEqual([true, true, false])
    for (let i = 0; i < 100; i++) budget.request()
    let allowed = 0
    while (budget.tryRetry()) allowed++
    // 2 + 20 % of 100, less the 2 already taken
    expect(allowed).toBe(20)
    budget.tick()
    // the previous second's traffic still counts
    allowed = 0
    while (budget.tryRetry()) allowed++
    expect(allowed).toBe(22)
  })

  it('has sane defaults', () => {
    expect(DEFAULT_PASSIVE_HEALTH.maxEjectionPercent).toBeLessThan(100)
  })
})
