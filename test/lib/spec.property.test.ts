/* eslint-disable import/no-named-as-default-member -- fast-check is used as `fc.*`, as its documentation does */
import fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import {formatError, UserError} from '../../src/lib/errors.js'
import {isSkipped} from '../../src/lib/registry/core/driver.js'
import {ForeignRecords} from '../../src/lib/registry/core/foreign.js'
import {decodeRecord} from '../../src/lib/registry/etcd/records.js'
import {parseBackend, specFromFlags} from '../../src/lib/registry/spec.js'
import type {ServiceInstance} from '../../src/lib/registry/types.js'
import {decodeZnode} from '../../src/lib/registry/zookeeper/index.js'
import {thrown} from '../helpers/thrown.js'

const schemes = fc.constantFrom('zk', 'zookeeper', 'etcd', 'etcds', 'consul', 'local', 'mysql', 'ZK', 'e tcd', '')
/** Backend-ish text: URIs made of the characters that matter to the parser, and anything at all. */
const backendText = fc.oneof(
  fc.string(),
  fc.string({unit: 'grapheme'}),
  fc
    .tuple(schemes, fc.stringMatching(/^[\w%:@/,.[\] -]{0,40}$/))
    .map(([scheme, rest]) => (scheme ? `${scheme}://${rest}` : rest)),
)

/** A user-chosen password: a marker that appears nowhere else, then anything. */
const password = fc.string({maxLength: 20}).map((s) => `Zq9${s}`)

function isValidInstance(instance: ServiceInstance): boolean {
  return (
    typeof instance.address === 'string' &&
    instance.address !== '' &&
    Number.isInteger(instance.port) &&
    instance.port >= 1 &&
    instance.port <= 65_535 &&
    Array.isArray(instance.tags) &&
    typeof instance.meta === 'object'
  )
}

describe('backend parsing, for any input', () => {
  it('returns a spec or throws a UserError, nothing else', () => {
    fc.assert(
      fc.property(backendText, (text) => {
        const error = thrown(() => parseBackend(text, {HOME: '/home/u'}))
        return error === undefined || error instanceof UserError
      }),
      {numRuns: 2000},
    )
  })

  it('does the same for any backend flags and environment', () => {
    const optional = fc.option(fc.string({maxLength: 30}), {nil: undefined})
    fc.assert(
      fc.property(
        backendText,
        fc.record({cacert: optional, cert: optional, key: optional, 'zk-auth': optional, 'zk-acl': optional}),
        fc.record({ETCDCTL_USER: optional, SVC_ZK_AUTH: optional, ETCDCTL_ENDPOINTS: optional}),
        (backend, flags, env) => {
          const error = thrown(() => specFromFlags({backend, ...flags}, env))
          return error === undefined || error instanceof UserError
        },
      ),
      {numRuns: 1000},
    )
  })

  it('never puts the password of a URI in the message it throws', () => {
    fc.assert(
      fc.property(
        schemes,
        fc.stringMatching(/^[^:@]{0,10}$/),
        password,
        fc.string({maxLength: 30}),
        (scheme, user, pw, rest) => {
          fc.pre(!rest.includes('Zq9'))
          const raw = `${scheme ? `${scheme}://` : ''}${user}:${pw}@${rest}`
          const error = thrown(() => specFromFlags({backend: raw}, {}))
          if (error === undefined) return true
          const message = formatError(error)
          return error instanceof UserError && !message.includes('Zq9') && !message.includes(pw)
        },
      ),
      {numRuns: 2000},
    )
  })

  it('never puts a password from --zk-auth or ETCDCTL_USER in the message it throws', () => {
    fc.assert(
      fc.property(fc.constantFrom('zk://h', 'etcd://h', 'bad host!'), password, (backend, pw) => {
        const error = thrown(() => specFromFlags({backend, 'zk-auth': pw}, {ETCDCTL_USER: pw}))
        return error === undefined || !formatError(error).includes(pw)
      }),
    )
  })
})

describe('payload decoders, for any bytes or JSON', () => {
  const json = fc.jsonValue().map((v) => JSON.stringify(v))
  const nearInstance = fc
    .record(
      {
        address: fc.oneof(fc.string(), fc.integer(), fc.constant(null)),
        port: fc.oneof(fc.integer(), fc.string(), fc.double(), fc.constant(null)),
        IP: fc.string(),
        PublicPort: fc.oneof(fc.integer(), fc.string()),
        tags: fc.oneof(fc.array(fc.string()), fc.jsonValue()),
        meta: fc.oneof(fc.dictionary(fc.string(), fc.string()), fc.jsonValue()),
        health: fc.oneof(fc.constantFrom('passing', 'critical', 'bogus'), fc.jsonValue()),
        source: fc.jsonValue(),
        id: fc.oneof(fc.string(), fc.jsonValue()),
      },
      {requiredKeys: []},
    )
    .map((v) => JSON.stringify(v))
  const payload = fc.oneof(
    fc.uint8Array({maxLength: 200}).map((b) => Buffer.from(b)),
    json.map((s) => Buffer.from(s)),
    nearInstance.map((s) => Buffer.from(s)),
  )

  it('ZooKeeper: a znode payload decodes to a usable instance or to the reason it is skipped, never a throw', () => {
    fc.assert(
      fc.property(payload, fc.string({maxLength: 30}), (data, node) => {
        const result = decodeZnode('web', node, `/services/web/${node}`, data)
        return 'skipped' in result ? result.reason !== '' : isValidInstance(result.instance)
      }),
      {numRuns: 2000},
    )
  })

  it('etcd: a value decodes to a usable instance or to the reason it is skipped, never a throw', () => {
    // found by this property: String() throws on a value whose toString is not a function
    expect(decodeRecord('/services', '/services/web/x', '{"id":{"toString":[]}}')).toMatchObject({skipped: true})
    fc.assert(
      fc.property(payload, fc.string({maxLength: 20}), (data, id) => {
        const result = decodeRecord('/services', `/services/web/${id}`, data.toString('utf8'))
        return isSkipped(result) ? result.reason !== '' : isValidInstance(result.instance)
      }),
      {numRuns: 2000},
    )
  })

  it('etcd: a value that is no instance is skipped with one warning per key', () => {
    const logs: string[] = []
    const foreign = new ForeignRecords((m) => logs.push(m))
    let revision = 0
    fc.assert(
      fc.property(payload, (data) => {
        revision++
        const result = decodeRecord('/services', `/services/web/i${revision}`, data.toString('utf8'))
        const before = logs.length
        const first = foreign.select([result])
        const second = foreign.select([result])
        if (first.length === 0) return second.length === 0 && logs.length === before + 1
        return second.length === 1 && logs.length === before
      }),
      {numRuns: 1000},
    )
    expect(logs.every((l) => /^skipping "?\/services\/web\/i/.test(l))).toBe(true)
  })
})
