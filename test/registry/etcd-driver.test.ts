import {
  ClientClosedError,
  EtcdAuthenticationFailedError,
  EtcdLeaseInvalidError,
  EtcdPermissionDeniedError,
  GRPCDeadlineExceededError,
  GRPCInternalError,
  GRPCInvalidArgumentError,
  GRPCNotFoundError,
  GRPCUnavailableError,
} from 'etcd3'
import {describe, expect, it} from 'vitest'

import {BackendError, BackendUnavailableError, UserError} from '../../src/lib/errors.js'
import {cleanMessage, MemberSkippedError, toBackendError} from '../../src/lib/registry/etcd/errors.js'
import {decodeRecord, encodeRecord} from '../../src/lib/registry/etcd/records.js'

const context = {addresses: '127.0.0.1:2379', prefix: '/services', user: 'svcuser'}
const refused =
  '14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:2379. Resolution note: '

describe('etcd error table', () => {
  it.each([
    [new GRPCUnavailableError(refused), BackendUnavailableError, true, /connection refused by 127.0.0.1:2379/],
    [
      new GRPCDeadlineExceededError('4 DEADLINE_EXCEEDED: Deadline exceeded'),
      BackendUnavailableError,
      true,
      /Deadline/,
    ],
    [new MemberSkippedError('another member serves the calls'), BackendUnavailableError, true, /another member/],
    [
      new EtcdAuthenticationFailedError('x'),
      BackendError,
      false,
      /refused the user name or password of user "svcuser"/,
    ],
    [new EtcdPermissionDeniedError('etcdserver: permission denied'), BackendError, false, /denied user "svcuser"/],
    [new GRPCInvalidArgumentError('3 INVALID_ARGUMENT: bad'), BackendError, false, /rejected the request: bad/],
    [new ClientClosedError('KV'), BackendError, false, /client is closed/],
    [new EtcdLeaseInvalidError('7'), BackendError, true, /lease lost/],
    [new GRPCInternalError('13 INTERNAL: oops'), BackendError, true, /request failed: oops/],
    [new GRPCNotFoundError('5 NOT_FOUND: gone'), BackendError, false, /request failed: gone/],
  ])('maps %s', (error, type, transient, message) => {
    const mapped = toBackendError(error, context)
    expect(mapped).toBeInstanceOf(type)
    expect((mapped as BackendError).transient).toBe(transient)
    expect(mapped.message).toMatch(message)
  })

  it('names the fix for a client without a user, and passes svc errors through', () => {
    const noUser = toBackendError(new EtcdPermissionDeniedError('etcdserver: permission denied'), {
      ...context,
      user: undefined,
    })
    expect(noUser.message).toMatch(/denied a client without a user permission on \/services\//)
    expect((noUser as BackendError).hint).toMatch(/pass user:password in the URI/)
    const own = new UserError('mine')
    expect(toBackendError(own, context)).toBe(own)
  })

  it('says refused and not found in words', () => {
    expect(cleanMessage(new Error(refused))).toBe('connection refused by 127.0.0.1:2379')
    expect(cleanMessage(new Error('14 UNAVAILABLE: Name resolution failed for target dns:nowhere.invalid:2379'))).toBe(
      'host nowhere.invalid not found',
    )
  })
})

describe('etcd records', () => {
  const owner = {host: 'h1', pid: 42, nonce: 'abcd'}
  const instance = {
    service: 'web',
    id: 'w1',
    address: '10.0.0.1',
    port: 80,
    tags: ['a'],
    meta: {k: 'v'},
    health: 'passing' as const,
  }

  it('reads back what it writes, with its owner', () => {
    const text = encodeRecord({instance, owner, ttlMs: 10_000, refreshMs: 3000})
    expect(JSON.parse(text)).toEqual({...instance, owner})
    expect(decodeRecord('/services', '/services/web/w1', text)).toEqual({instance, owner})
  })

  it('reads records of other tools without an owner: hand-written JSON, a quoted port, registrator values', () => {
    const plain = {tags: [], meta: {}, health: 'unknown'}
    expect(decodeRecord('/s', '/s/web/x', '{"address": "10.0.0.5", "port": "8000"}')).toEqual({
      instance: {service: 'web', id: 'x', address: '10.0.0.5', port: 8000, ...plain},
    })
    expect(decodeRecord('/s', '/s/web/h:c:80', '10.0.0.7:8002\n')).toEqual({
      instance: {service: 'web', id: 'h:c:80', address: '10.0.0.7', port: 8002, ...plain},
    })
    expect(decodeRecord('/s', '/s/web/v6', '[::1]:8003')).toMatchObject({instance: {address: '::1', port: 8003}})
  })

  it.each([
    ['/s/stray', '{}', 'the key is not <prefix>/<service>/<id>'],
    ['/s/web/x', 'not json', 'it is not JSON'],
    ['/s/web/x', '', 'it is empty'],
    ['/s/web/x', '[1]', 'it is not a JSON object'],
    ['/s/web/x', '{"port": 1}', 'it has no address'],
    ['/s/web/x', '{"address": "a", "port": 1, "service": "api"}', /belongs elsewhere/],
  ])('skips %s holding %j', (key, text, reason) => {
    const result = decodeRecord('/s', key, text)
    expect(result).toMatchObject({skipped: true, key})
    expect((result as {reason: string}).reason).toMatch(reason)
  })
})
