import zookeeper from 'node-zookeeper-client'
import {describe, expect, it} from 'vitest'

import {BackendError} from '../../src/lib/errors.js'
import {toBackendError} from '../../src/lib/registry/zookeeper/errors.js'
import {decodeZnode, encodePayload} from '../../src/lib/registry/zookeeper/index.js'

const {Exception} = zookeeper
const exception = (code: number): zookeeper.Exception =>
  (Exception as unknown as {create(code: number): zookeeper.Exception}).create(code)
const owner = {host: 'h1', pid: 42, nonce: 'abc'}
const instance = {
  service: 'web',
  id: 'w1',
  address: '10.0.0.1',
  port: 80,
  tags: ['a'],
  meta: {k: 'v'},
  health: 'warning' as const,
}
const decode = (payload: unknown, node = '10.0.0.1:80') =>
  decodeZnode(
    'web',
    node,
    `/services/web/${node}`,
    Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload)),
  )

/** Why a payload is skipped; undefined when it reads. */
function reason(payload: unknown, node?: string): string | undefined {
  const result = decode(payload, node)
  return 'skipped' in result ? result.reason : undefined
}

describe('ZooKeeper records', () => {
  it('reads back what it writes, with its owner', () => {
    expect(decodeZnode('web', '10.0.0.1:80', '/services/web/10.0.0.1:80', encodePayload(instance, owner))).toEqual({
      instance,
      owner,
    })
  })

  it('reads a registrator payload as a foreign record whose health is unknown', () => {
    expect(decode({Name: 'web', IP: '10.0.0.1', PublicPort: 80, ContainerID: 'c1', Tags: null, Attrs: null})).toEqual({
      instance: {
        service: 'web',
        id: 'web:10.0.0.1:80',
        address: '10.0.0.1',
        port: 80,
        tags: [],
        meta: {},
        health: 'unknown',
        source: {containerId: 'c1', containerName: '', image: '', host: ''},
      },
    })
  })

  it('skips what it cannot read, saying why', () => {
    expect(reason('not json')).toMatch(/not JSON/)
    expect(reason({...instance, health: 'bogus'})).toMatch(/health "bogus" is not one of/)
    expect(reason({...instance, address: '127.0.0.1\r\nX'})).toMatch(/invalid address/)
    expect(reason({hello: 'world'}, 'junk')).toMatch(/no address|port/)
    expect(reason({...instance, owner: {host: 'h'}})).toMatch(/owner/)
  })
})

describe('ZooKeeper errors, one table', () => {
  it('marks connection loss and expiry transient, and everything else permanent', () => {
    for (const code of [Exception.CONNECTION_LOSS, Exception.OPERATION_TIMEOUT, Exception.SESSION_EXPIRED]) {
      const error = toBackendError(exception(code), 'list /services')
      expect(error).toBeInstanceOf(BackendError)
      expect((error as BackendError).transient).toBe(true)
    }

    const bad = toBackendError(exception(Exception.BAD_ARGUMENTS), 'list /services') as BackendError
    expect(bad.transient).toBe(false)
    expect(bad.message).toBe('list /services failed: BAD_ARGUMENTS')
  })

  it('names the fix for refused credentials and ACLs', () => {
    const denied = toBackendError(exception(Exception.NO_AUTH), 'deregister web w1', {user: 'alice', password: 'x'})
    expect(denied.message).toBe('deregister web w1 failed: the znode\'s ACL denies user "alice" (NO_AUTH)')
    expect((denied as BackendError).hint).toMatch(/--zk-auth/)
    const anonymous = toBackendError(exception(Exception.NO_AUTH), 'register /s/w') as BackendError
    expect(anonymous.message).toMatch(/denies an unauthenticated client/)
    expect((toBackendError(exception(Exception.INVALID_ACL), 'register /s/w') as BackendError).hint).toMatch(/--zk-acl/)
  })

  it("keeps svc errors as they are, and makes the library's thrown errors permanent", () => {
    const own = new BackendError('zookeeper', 'x', {transient: true})
    expect(toBackendError(own, 'y')).toBe(own)
    const thrown = toBackendError(new Error('Node path must not be empty'), 'read /') as BackendError
    expect(thrown.transient).toBe(false)
    expect(thrown.message).toBe('read / failed: Node path must not be empty')
  })
})
