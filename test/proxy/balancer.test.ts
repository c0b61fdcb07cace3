import {describe, expect, it} from 'vitest'

import {HashRing} from '../../src/lib/balancer/hash-ring.js'
import {createBalancer, parseBalanceStrategy, type Target} from '../../src/lib/balancer/strategies.js'
import {UserError} from '../../src/lib/errors.js'

interface T extends Target {
  inflight: number
}

const targets = (...weights: number[]): T[] => weights.map((weight, i) => ({id: `t${i}`, weight, inflight: 0}))

/** A fixed pseudo-random sequence, so counts are exact. */
function seeded(seed = 1): () => number {
  let s = seed
  return () => {
    s = (s * 16_807) % 2_147_483_647
    return (s - 1) / 2_147_483_646
  }
}

function counts(pick: () => T | undefined, n: number): Map<string, number> {
  const out = new Map<string, number>()
  for (let i = 0; i < n; i++) {
    const t = pick()!
    out.set(t.id, (out.get(t.id) ?? 0) + 1)
  }

  return out
}

describe('balancers', () => {
  it('round-robin rotates evenly', () => {
    const b = createBalancer('round-robin', targets(1, 1, 1))
    expect(Array.from({length: 6}, () => b.pick(undefined)!.id)).toEqual(['t0', 't1', 't2', 't0', 't1', 't2'])
  })

  it('weighted round-robin is smooth and proportional', () => {
    const b = createBalancer('round-robin', targets(3, 1))
    expect(Array.from({length: 8}, () => b.pick(undefined)!.id)).toEqual([
      't0',
      't0',
      't1',
      't0',
      't0',
      't0',
      't1',
      't0',
    ])
  })

  it('weight 0 keeps a target out unless every weight is 0', () => {
    const b = createBalancer('round-robin', targets(0, 2))
    expect(counts(() => b.pick(undefined), 10)).toEqual(new Map([['t1', 10]]))
    const all = createBalancer('round-robin', targets(0, 0))
    expect(counts(() => all.pick(undefined), 10)).toEqual(
      new Map([
        ['t0', 5],
        ['t1', 5],
      ]),
    )
  })

  it('random follows the weights', () => {
    const b = createBalancer('random', targets(1, 3), seeded())
    const c = counts(() => b.pick(undefined), 8000)
    expect(c.get('t1')! / 8000).toBeGreaterThan(0.72)
    expect(c.get('t1')! / 8000).toBeLessThan(0.78)
  })

  it('least-conn picks the less loaded of two choices', () => {
    const list = targets(1, 1, 1)
    list[0]!.inflight = 10
    list[1]!.inflight = 10
    const b = createBalancer('least-conn', list, seeded())
    const c = counts(() => b.pick(undefined), 3000)
    // t2 wins every draw it is part of: 2 of the 3 pairs
    expect(c.get('t2')! / 3000).toBeGreaterThan(0.6)
    // an idle target is never ignored for long, and a single target is always picked
    expect(createBalancer('least-conn', targets(1)).pick(undefined)!.id).toBe('t0')
  })

  it('least-conn weighs in-flight requests by weight', () => {
    const list = targets(4, 1)
    list[0]!.inflight = 3
    list[1]!.inflight = 1
    const b = createBalancer('least-conn', list, seeded())
    // 3/4 < 1/1: the heavy target still wins
    expect(counts(() => b.pick(undefined), 100).get('t0')).toBe(100)
  })

  it('hash sends one key to one target, spreads keys, and falls back to round-robin without a key', () => {
    const b = createBalancer('hash', targets(1, 1, 1))
    const first = b.pick('user-42')
    for (let i = 0; i < 20; i++) expect(b.pick('user-42')).toBe(first)
    const c = counts(() => b.pick(`k${Math.random()}`), 3000)
    for (const n of c.values()) expect(n).toBeGreaterThan(700)
    expect([b.pick(undefined), b.pick(undefined), b.pick(undefined)].map((t) => t!.id).sort()).toEqual([
      't0',
      't1',
      't2',
    ])
  })

  it('pickOther never returns the excluded target, and undefined when there is no other', () => {
    for (const strategy of ['round-robin', 'random', 'least-conn', 'hash'] as const) {
      const list = targets(1, 1)
      const b = createBalancer(strategy, list, seeded())
      for (let i = 0; i < 50; i++) expect(b.pickOther(list[0]!, `k${i}`), strategy).toBe(list[1])
      const one = createBalancer(strategy, [list[0]!])
      expect(one.pickOther(list[0]!, 'k'), strategy).toBeUndefined()
      expect(createBalancer(strategy, []).pick('k'), strategy).toBeUndefined()
    }
  })

  it('parses strategy names', () => {
    expect(parseBalanceStrategy('least-conn')).toBe('least-conn')
    expect(() => parseBalanceStrategy('fastest')).toThrow(UserError)
  })
})

const ids = (n: number): string[] => Array.from({length: n}, (_, i) => `10.0.0.${i}:80`)

describe('hash ring', () => {
  it('moves only the removed target’s keys', () => {
    const before = new HashRing(
      ids(5),
      (t) => t,
      () => 1,
    )
    const after = new HashRing(
      ids(5).filter((t) => t !== '10.0.0.2:80'),
      (t) => t,
      () => 1,
    )
    let moved = 0
    for (let i = 0; i < 5000; i++) {
      const key = `key-${i}`
      const a = before.get(key)
      const b = after.get(key)
      if (a === '10.0.0.2:80') moved++
      else expect(b).toBe(a)
    }

    // about a fifth of the keys were on the removed target
    expect(moved / 5000).toBeGreaterThan(0.12)
    expect(moved / 5000).toBeLessThan(0.28)
  })

  it('gives weight-proportional shares', () => {
    const ring = new HashRing(
      ['a', 'b'],
      (t) => t,
      (t) => (t === 'a' ? 3 : 1),
    )
    let a = 0
    for (let i = 0; i < 8000; i++) if (ring.get(`k${i}`) === 'a') a++
    expect(a / 8000).toBeGreaterThan(0.68)
    expect(a / 8000).toBeLessThan(0.82)
  })

  it('next() walks clockwise to another owner', () => {
    const ring = new HashRing(
      ids(3),
      (t) => t,
      () => 1,
    )
    const owner = ring.get('x')!
    const other = ring.next('x', owner)
    expect(other).toBeDefined()
    expect(other).not.toBe(owner)
    expect(
      new HashRing<string>(
        [],
        (t) => t,
        () => 1,
      ).get('x'),
    ).toBeUndefined()
  })
})
