import * as fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import {isSkipped, type ReadResult, type SkippedRecord, type StoredRecord} from '../../src/lib/registry/core/driver.js'
import {toRecords} from '../../src/lib/registry/consul/records.js'

/** Consul health entries → the instances svc reads and the records it skips. */
function decodeHealth(body: unknown): {instances: StoredRecord['instance'][]; skipped: SkippedRecord[]} {
  const records: ReadResult[] = toRecords(body)
  return {
    instances: records.flatMap((r) => (isSkipped(r) ? [] : [r.instance])),
    skipped: records.filter((r) => isSkipped(r)),
  }
}

/** A /v1/health/service entry as svc writes it: usable, with a unique id. */
function wellFormed(id: string, port: number, serviceAddress: string, nodeAddress: string): unknown {
  return {
    Node: {Node: 'n1', Address: nodeAddress},
    Service: {ID: id, Service: 'web', Address: serviceAddress, Port: port, Tags: ['t'], Meta: {k: 'v'}},
    Checks: [
      {CheckID: 'serfHealth', Status: 'passing', ServiceID: ''},
      {CheckID: `service:${id}`, Status: 'passing', ServiceID: id},
    ],
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

describe('toRecords (Consul health entries written by any tool)', () => {
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
    expect(skipped.map((s) => `${s.key}: ${s.reason}`)).toEqual([
      'web/b: it holds an invalid instance (invalid port "0")',
      'web/c: it holds an invalid instance (invalid address "")',
      'web/d: its meta values are not strings',
      'a health entry: it is not a service entry',
    ])
  })

  it('reads the owner svc wrote, other tools’ entries as foreign, and refuses an address that breaks a line', () => {
    const owned = wellFormed('o', 80, '10.0.0.5', '')
    Object.assign((owned as {Service: {Meta: object}}).Service.Meta, {
      // eslint-disable-next-line camelcase -- the keys svc writes
      svc_owner_host: 'h1',
      // eslint-disable-next-line camelcase
      svc_owner_pid: '42',
      // eslint-disable-next-line camelcase
      svc_owner_nonce: 'n1',
    })
    const registrator = {
      Node: {Node: 'n1', Address: '10.0.0.9'},
      Service: {ID: 'box:web-1:80', Service: 'web', Address: '', Port: 32_768, Tags: null, Meta: null},
      Checks: [],
    }
    const crlf = wellFormed('x', 80, '127.0.0.1\r\nX:1', '')
    const records = toRecords([owned, registrator, crlf])
    expect(records.find((r) => !isSkipped(r) && r.instance.id === 'o')).toMatchObject({
      owner: {host: 'h1', pid: 42, nonce: 'n1'},
      instance: {meta: {k: 'v'}},
    })
    const foreign = records.find((r) => !isSkipped(r) && r.instance.id === 'box:web-1:80')
    expect(foreign).toEqual({
      instance: {
        service: 'web',
        id: 'box:web-1:80',
        address: '10.0.0.9',
        port: 32_768,
        tags: [],
        meta: {},
        // no check of its own (registrator's default): Consul's answer, passing, stands
        health: 'passing',
      },
    })
    expect(records.filter((r) => isSkipped(r)).map((r) => isSkipped(r) && r.key)).toEqual(['web/x'])
  })

  it('answers nothing, without throwing, to a body that is not a list', () => {
    for (const body of [null, undefined, 'x', 42, {Service: {}}])
      expect(decodeHealth(body)).toEqual({instances: [], skipped: []})
  })
})
