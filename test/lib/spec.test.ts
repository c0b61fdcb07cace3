import {describe, expect, it} from 'vitest'

import {UserError} from '../../src/lib/errors.js'
import {describeBackend, parseBackend} from '../../src/lib/registry/spec.js'

describe('parseBackend', () => {
  const env = {HOME: '/home/u'}
  it('defaults to the local registry under the XDG state directory', () => {
    expect(parseBackend(undefined, {XDG_STATE_HOME: '/state'})).toEqual({kind: 'local', dir: '/state/svc/registry'})
    expect(parseBackend('', {SVC_HOME: '/svc'})).toEqual({kind: 'local', dir: '/svc/registry'})
    expect(parseBackend('local:///tmp/reg', env)).toEqual({kind: 'local', dir: '/tmp/reg'})
  })

  it('gives bare names their usual default address and environment variable', () => {
    expect(parseBackend('zk', env)).toEqual({kind: 'zk', hosts: [{host: '127.0.0.1', port: 2181}], base: '/services'})
    expect(parseBackend('etcd', {ETCDCTL_ENDPOINTS: 'http://10.0.0.1:2379,http://10.0.0.2:2379'})).toEqual({
      kind: 'etcd',
      hosts: [
        {host: '10.0.0.1', port: 2379},
        {host: '10.0.0.2', port: 2379},
      ],
      prefix: '/services',
    })
    expect(parseBackend('consul', {CONSUL_HTTP_ADDR: 'http://c1:8501', CONSUL_HTTP_TOKEN: 's3cret'})).toEqual({
      kind: 'consul',
      hosts: [{host: 'c1', port: 8501}],
      token: 's3cret',
    })
  })

  it('parses URIs with several addresses, default ports, IPv6 and a base path', () => {
    expect(parseBackend('zk://h1:2181,h2,[::1]:2182/registry/prod', env)).toEqual({
      kind: 'zk',
      hosts: [
        {host: 'h1', port: 2181},
        {host: 'h2', port: 2181},
        {host: '::1', port: 2182},
      ],
      base: '/registry/prod',
    })
    expect(parseBackend('zookeeper://h1/', env)).toMatchObject({kind: 'zk', base: '/services'})
    expect(parseBackend('etcd://e1:2379/svc', env)).toMatchObject({prefix: '/svc'})
    expect(describeBackend(parseBackend('zk://h1,[::1]:2182', env))).toBe('zk://h1:2181,[::1]:2182/services')
  })

  it.each([
    ['mysql://x', /unknown backend "mysql"/],
    ['redis', /unknown backend "redis"/],
    ['zk://h1:99999', /invalid port "99999"/],
    ['zk://h1:abc', /invalid port "abc"/],
    ['zk://bad host', /invalid host "bad host"/],
    ['zk://h1/bad path!', /invalid base path/],
    ['consul://h1/x', /has a path/],
    ['etcd://,', /names no address/],
  ])('rejects %s with a user error', (value, message) => {
    expect(() => parseBackend(value, env)).toThrow(UserError)
    expect(() => parseBackend(value, env)).toThrow(message)
  })
})
