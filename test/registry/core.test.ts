import {describe, expect, it} from 'vitest'

import {BackendError, UserError} from '../../src/lib/errors.js'
import {decodeFields, decodeJson, encodeJson} from '../../src/lib/registry/core/codec.js'
import {isSkipped} from '../../src/lib/registry/core/driver.js'
import {ForeignRecords} from '../../src/lib/registry/core/foreign.js'
import {currentOwner, ownerAlive, sameOwner} from '../../src/lib/registry/core/owner.js'
import {MemberPool, withPolicy} from '../../src/lib/registry/core/policy.js'
import {toInstance, validateAddress, validateInstanceId} from '../../src/lib/registry/validate.js'

const fields = {service: 'web', id: 'w1', address: '127.0.0.1', port: 8080}
const place = {key: '/services/web/w1', service: 'web'}
const transient = (): BackendError => new BackendError('etcd', 'member gone', {transient: true})

describe('the codec', () => {
  it('reads a record without health as unknown, tags and meta as empty, and no owner as none', () => {
    expect(decodeFields(fields, place)).toEqual({
      instance: {...fields, tags: [], meta: {}, health: 'unknown'},
    })
  })

  it('skips bogus health, an address with a line break, a bad port, and non-string tags, saying why', () => {
    const cases = [
      [{...fields, health: 'bogus'}, /health "bogus" is not one of/],
      [{...fields, address: '127.0.0.1\r\nX:1'}, /invalid address/],
      [{...fields, port: 0}, /invalid port/],
      [{...fields, port: 70_000}, /invalid port/],
      [{...fields, tags: [1]}, /tags are not strings/],
      [{...fields, service: 'a/b'}, /invalid service name/],
      [{...fields, id: '..'}, /invalid instance id/],
      [{...fields, owner: {host: 'h'}}, /owner is not/],
    ] as const
    for (const [bad, why] of cases) {
      const result = decodeFields(bad, place)
      expect(isSkipped(result) && result.reason, JSON.stringify(bad)).toMatch(why)
    }
  })

  it('round-trips the common JSON shape with its owner, and refuses a record filed under another service', () => {
    const instance = toInstance({...fields, tags: ['v1'], meta: {k: 'v'}})
    const owner = currentOwner()
    expect(decodeJson(encodeJson(instance, owner), place)).toEqual({instance, owner})
    const elsewhere = decodeJson(encodeJson(instance, owner), {key: 'k', service: 'api'})
    expect(isSkipped(elsewhere) && elsewhere.reason).toMatch(/belongs elsewhere/)
    expect(isSkipped(decodeJson('{"instance":', place))).toBe(true)
  })
})

describe('ids and addresses', () => {
  it('refuses . and .. as ids, as names are', () => {
    for (const id of ['.', '..', 'a/b', 'x'.repeat(257)]) expect(() => validateInstanceId(id)).toThrow(UserError)
    expect(validateInstanceId('web:10.0.0.5:8080')).toBe('web:10.0.0.5:8080')
  })

  it('takes IPs and host names, nothing else', () => {
    for (const ok of ['127.0.0.1', '::1', 'fe80::1%eth0', 'db-1.example.com', 'my_host']) {
      expect(validateAddress(ok)).toBe(ok)
    }

    for (const bad of ['127.0.0.1\r\nX:1', 'a b', '', 'x'.repeat(254), 'a..b']) {
      expect(() => validateAddress(bad)).toThrow(UserError)
    }
  })
})

describe('owners', () => {
  it('knows itself, a dead pid of this host, and takes another host as alive', () => {
    const me = currentOwner()
    expect(sameOwner(me, currentOwner())).toBe(true)
    expect(ownerAlive(me)).toBe(true)
    expect(ownerAlive({...me, nonce: 'an earlier process'})).toBe(false)
    expect(ownerAlive({...me, pid: 2 ** 22 + 1})).toBe(false)
    expect(ownerAlive({host: `not-${me.host}`, pid: 1, nonce: 'x'})).toBe(true)
  })
})

describe('the foreign-record rule', () => {
  it('warns once per key however often the record is read, and keeps the readable ones', () => {
    const logs: string[] = []
    const foreign = new ForeignRecords((m) => logs.push(m))
    const bad = {skipped: true as const, key: '/services/x/1', reason: 'it is not JSON'}
    const good = {instance: toInstance(fields)}
    for (let i = 0; i < 3; i++) expect(foreign.select([bad, good])).toEqual([good])
    expect(foreign.serviceNames([{name: 'a/b'}, {name: 'web'}])).toEqual([{name: 'web'}])
    foreign.serviceNames([{name: 'a/b'}])
    expect(logs).toHaveLength(2)
    expect(logs[0]).toBe('skipping /services/x/1: it is not JSON')
    expect(logs[1]).toMatch(/^skipping a\/b: it is not a service name svc can use/)
  })
})

describe('the policy', () => {
  it('retries transient errors within the deadline and throws permanent ones at once', async () => {
    const retry = {attempts: 3, initialDelayMs: 1, maxDelayMs: 5}
    let calls = 0
    const value = await withPolicy({backend: 'etcd', what: 'listing', deadlineMs: 1000, retry}, async () => {
      calls++
      if (calls < 3) throw transient()
      return 'ok'
    })
    expect([value, calls]).toEqual(['ok', 3])
    calls = 0
    const permanent = new BackendError('etcd', 'denied', {transient: false})
    await expect(
      withPolicy({backend: 'etcd', what: 'listing', deadlineMs: 1000, retry}, async () => {
        calls++
        throw permanent
      }),
    ).rejects.toBe(permanent)
    expect(calls).toBe(1)
    await expect(
      withPolicy({backend: 'etcd', what: 'listing', deadlineMs: 50, retry}, () => new Promise(() => {})),
    ).rejects.toThrow('listing took longer than 50 ms')
  })

  it('starts from the member that answered last, so a frozen first member costs one timeout once', async () => {
    const pool = new MemberPool(['frozen', 'b', 'c'])
    const tried: string[] = []
    const call = (member: string): Promise<string> => {
      tried.push(member)
      return member === 'frozen' ? Promise.reject(transient()) : Promise.resolve(member)
    }

    expect(await pool.first(call)).toBe('b')
    expect(await pool.first(call)).toBe('b')
    expect(tried).toEqual(['frozen', 'b', 'b'])
    expect(pool.order()).toEqual(['b', 'c', 'frozen'])
    await expect(pool.first(() => Promise.reject(transient()))).rejects.toThrow('member gone')
  })
})
