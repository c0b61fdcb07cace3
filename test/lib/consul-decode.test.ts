import * as fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import {decodeHealth} from '../../src/lib/registry/consul.js'

/** A /v1/health/service entry as svc writes it: usable, with a unique id. */
function wellFormed(id: string, port: number, serviceAddress: string, nodeAddress: string): unknown {
  return {
    Node: {Node: 'n1', Address: nodeAddress},
    Service: {ID: id, Service: 'web', Address: serviceAddress, Port: port, Tags: ['t'], Meta: {k: 'v'}},
    Checks: [{CheckID: `service:${id}`, Status: 'passing'}],
  }
}

const good = fc.record({
  port: fc.integer({min: 1, max: 65_535}),
  // an empty service address falls back to the node's
  serviceAddress: fc.constantFrom('10.0.0.5', '', 'web.internal'),
  nodeAddress: fc.constantFrom('10.0.0.9', '127.0.0.1'),
})

/** Anything another tool (or a broken one) could leave: arbitrary JSON, and near-misses of a real entry. */
const junk = fc.oneof(
  fc.jsonValue(),
  fc.record({
    Node: fc.oneof(fc.jsonValue(), fc.record({Node: fc.jsonValue(), Address: fc.jsonValue()})),
    Service: fc.oneof(
      fc.jsonValue(),
      fc.record({
        ID: fc.oneof(fc.constantFrom('junk-1', ''), fc.jsonValue()),
        Service: fc.oneof(fc.constant('web'), fc.jsonValue()),
        Address: fc.oneof(fc.constantFrom('', '0.0.0.0'), fc.jsonValue()),
        Port: fc.oneof(fc.constantFrom(0, -1, 70_000, 1.5), fc.jsonValue()),
        Tags: fc.jsonValue(),
        Meta: fc.jsonValue(),
      }),
    ),
    Checks: fc.jsonValue(),
  }),
)

describe('decodeHealth (Consul health entries written by any tool)', () => {
  it('never throws, keeps every well-formed entry mixed in, and skips the rest with a reason', () => {
    fc.assert(
      fc.property(
        fc.array(good, {maxLength: 5}),
        fc.array(junk, {maxLength: 8}),
        fc.infiniteStream(fc.boolean()),
        (goods, junks, coin) => {
          const wanted = goods.map((g, i) => wellFormed(`good-${i}`, g.port, g.serviceAddress, g.nodeAddress))
          // interleave: svc's entries must survive any neighbours
          const body: unknown[] = []
          const a = [...wanted]
          const b = [...junks]
          const flips = coin[Symbol.iterator]()
          while (a.length > 0 || b.length > 0) {
            const takeA = b.length === 0 || (a.length > 0 && flips.next().value === true)
            body.push(takeA ? a.shift() : b.shift())
          }

          const {instances, skipped} = decodeHealth(body)
          for (const [i, g] of goods.entries()) {
            const instance = instances.find((x) => x.id === `good-${i}`)
            expect(instance).toBeDefined()
            expect(instance!.port).toBe(g.port)
            expect(instance!.address).toBe(g.serviceAddress || g.nodeAddress)
            expect(instance!.health).toBe('passing')
          }

          for (const instance of instances) {
            expect(Number.isInteger(instance.port) && instance.port >= 1 && instance.port <= 65_535).toBe(true)
            expect(instance.address.trim()).not.toBe('')
            expect(instance.address).not.toBe('0.0.0.0')
          }

          // every entry is either an instance or a skip (junk with a duplicate id may fold into one instance)
          expect(instances.length + skipped.length).toBeLessThanOrEqual(body.length)
          for (const s of skipped) expect(s.reason).not.toBe('')
        },
      ),
      {numRuns: 300},
    )
  })

  it('falls back to the node address, and skips only what has no address or port 0', () => {
    const body = [
      wellFormed('a', 80, '', '10.0.0.9'),
      wellFormed('b', 0, '10.0.0.5', '10.0.0.9'),
      wellFormed('c', 80, '', ''),
      {
        ...(wellFormed('d', 80, '10.0.0.5', '') as object),
        Service: {ID: 'd', Service: 'web', Address: '10.0.0.5', Port: 80, Meta: {n: 1}},
      },
      'not an entry',
    ]
    const {instances, skipped} = decodeHealth(body)
    expect(instances.map((i) => `${i.id} ${i.address}:${i.port}`)).toEqual(['a 10.0.0.9:80'])
    expect(skipped.map((s) => `${s.label}: ${s.reason}`)).toEqual([
      'web/b: port 0',
      'web/c: no address',
      "web/d: meta that is not svc's",
      'an entry: not a service entry',
    ])
  })

  it('answers nothing, without throwing, to a body that is not a list', () => {
    for (const body of [null, undefined, 'x', 42, {Service: {}}])
      expect(decodeHealth(body)).toEqual({instances: [], skipped: []})
  })
})
