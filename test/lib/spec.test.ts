import {describe, expect, it} from 'vitest'

import {formatError, UserError} from '../../src/lib/errors.js'
import {describeBackend, parseBackend, redactUri, specFromFlags} from '../../src/lib/registry/spec.js'
import {effectiveZkAcl, parseZkAcl} from '../../src/lib/registry/zk-acl.js'
import {thrown} from '../helpers/thrown.js'

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
      // the addresses came from the variable: errors name it
      origin: 'ETCDCTL_ENDPOINTS',
    })
    expect(parseBackend('consul', {CONSUL_HTTP_ADDR: 'http://c1:8501', CONSUL_HTTP_TOKEN: 's3cret'})).toEqual({
      kind: 'consul',
      hosts: [{host: 'c1', port: 8501}],
      token: 's3cret',
      origin: 'CONSUL_HTTP_ADDR',
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

describe('credentials, TLS and redaction', () => {
  const env = {HOME: '/home/u'}
  it('reads user:password from the URI user info, percent-decoded', () => {
    expect(parseBackend('zk://alice:s3cret@h1:2181,h2/base', env)).toEqual({
      kind: 'zk',
      hosts: [
        {host: 'h1', port: 2181},
        {host: 'h2', port: 2181},
      ],
      base: '/base',
      auth: {user: 'alice', password: 's3cret'},
    })
    expect(parseBackend('etcd://b%C3%B6b:p%40ss%2Fw%3Ard@h', env)).toMatchObject({
      auth: {user: 'böb', password: 'p@ss/w:rd'},
    })
    // the last @ ends the user info: an unencoded @ or / in the password still works
    expect(parseBackend('zk://u:a@b/c@h:2182', env)).toMatchObject({
      auth: {user: 'u', password: 'a@b/c'},
      hosts: [{host: 'h', port: 2182}],
    })
    expect(parseBackend('etcd://u:@h', env)).toMatchObject({auth: {user: 'u', password: ''}})
  })

  it('takes etcds:// and https:// endpoints as TLS, etcd:// as plain', () => {
    expect(parseBackend('etcds://h1:2379,h2/p', env)).toEqual({
      kind: 'etcd',
      hosts: [
        {host: 'h1', port: 2379},
        {host: 'h2', port: 2379},
      ],
      prefix: '/p',
      tls: {},
    })
    expect(parseBackend('etcd://h1', env)).not.toHaveProperty('tls')
    expect(parseBackend('etcd', {ETCDCTL_ENDPOINTS: 'https://e1:2379'})).toMatchObject({tls: {}})
    expect(parseBackend('etcds', {ETCDCTL_ENDPOINTS: 'e1:2379'})).toMatchObject({tls: {}})
    expect(describeBackend(parseBackend('etcds://u:pw@h1/p', env))).toBe('etcds://u:***@h1:2379/p')
  })

  it('fills in etcd credentials from ETCDCTL_USER only when the URI has none', () => {
    expect(parseBackend('etcd://h', {ETCDCTL_USER: 'root:pw:with:colons'})).toMatchObject({
      auth: {user: 'root', password: 'pw:with:colons'},
    })
    expect(parseBackend('etcd://me:mine@h', {ETCDCTL_USER: 'root:pw'})).toMatchObject({
      auth: {user: 'me', password: 'mine'},
    })
    expect(parseBackend('zk://h', {ETCDCTL_USER: 'root:pw'})).not.toHaveProperty('auth')
  })

  it('lets a flag beat its environment variable, and both beat the URI', () => {
    const uri = 'zk://uri:fromuri@h/base'
    expect(specFromFlags({backend: uri, 'zk-auth': 'flag:f'}, {SVC_ZK_AUTH: 'env:e'})).toMatchObject({
      auth: {user: 'flag'},
    })
    expect(specFromFlags({backend: uri}, {SVC_ZK_AUTH: 'env:e'})).toMatchObject({auth: {user: 'env', password: 'e'}})
    expect(specFromFlags({backend: uri}, {})).toMatchObject({auth: {user: 'uri', password: 'fromuri'}})
    expect(specFromFlags({}, {SVC_BACKEND: 'zk://h'})).toMatchObject({kind: 'zk'})
    const tls = specFromFlags(
      {backend: 'etcds://h', cacert: '/flag/ca.pem'},
      {ETCDCTL_CACERT: '/env/ca.pem', ETCDCTL_CERT: '/env/c.pem', ETCDCTL_KEY: '/env/k.pem'},
    )
    expect(tls).toMatchObject({tls: {ca: '/flag/ca.pem', cert: '/env/c.pem', key: '/env/k.pem'}})
    // exported etcdctl variables do not turn a plain URI into TLS, nor make it an error
    expect(specFromFlags({backend: 'etcd://h'}, {ETCDCTL_CACERT: '/env/ca.pem'})).not.toHaveProperty('tls')
    expect(specFromFlags({backend: 'consul://h', cacert: '/ca.pem'}, {CONSUL_HTTP_SSL: 'true'})).toMatchObject({
      https: true,
      tls: {ca: '/ca.pem'},
    })
  })

  it('gives znodes creator-all,read with credentials, open without, and takes --zk-acl', () => {
    const spec = specFromFlags(
      {
        backend: 'zk://h',
        'zk-auth': 'a:b',
        'zk-acl': 'creator-all, world:anyone:r ,ip:10.0.0.0/8:rw,digest:bob:abc=:cdrwa',
      },
      {},
    )
    expect(spec).toMatchObject({
      acl: [
        {scheme: 'auth', id: '', perms: 'cdrwa'},
        {scheme: 'world', id: 'anyone', perms: 'r'},
        {scheme: 'ip', id: '10.0.0.0/8', perms: 'rw'},
        {scheme: 'digest', id: 'bob:abc=', perms: 'cdrwa'},
      ],
    })
    expect(effectiveZkAcl(undefined, true)).toEqual(parseZkAcl('creator-all,read', true))
    expect(effectiveZkAcl(undefined, false)).toEqual([{scheme: 'world', id: 'anyone', perms: 'cdrwa'}])
    expect(specFromFlags({backend: 'zk://h'}, {SVC_ZK_ACL: 'read'})).toMatchObject({
      acl: [{scheme: 'world', perms: 'r'}],
    })
  })

  it.each([
    [{backend: 'zk://h', 'zk-acl': 'creator-all'}, /creator-all \(auth::\) needs credentials: pass --zk-auth/],
    [{backend: 'zk://h', 'zk-acl': 'world:anyone:rx'}, /bad permissions "rx"/],
    [{backend: 'zk://h', 'zk-acl': 'world:someone:r'}, /the world scheme's only id is anyone/],
    [{backend: 'zk://h', 'zk-acl': 'nonsense'}, /is not scheme:id:perms/],
    [{backend: 'zk://h', 'zk-acl': ' , '}, /names no entry/],
    [{backend: 'zk://h', 'zk-auth': 'no-colon-here'}, /--zk-auth \(SVC_ZK_AUTH\) is not user:password/],
    [{backend: 'etcd://h', cacert: '/ca.pem'}, /is given but etcd:\/\/h:2379\/services is plain: use etcds:/],
    [{backend: 'consul://h', cert: '/c.pem'}, /is given but consul:\/\/h:8500 is plain HTTP: use consul\+https:/],
    [{backend: 'etcds://h', cert: '/c.pem'}, /needs both --cert and --key/],
    [{backend: 'zk://:pw@h'}, /is not user:password/],
    [{backend: 'zk://user@h'}, /is not user:password/],
    [{backend: 'zk://u:%E0%A4%A@h'}, /bad percent-encoding/],
    // found by the property tests: names of Object.prototype's members
    [{backend: 'zk://h', 'zk-acl': '__proto__'}, /is not scheme:id:perms/],
    [{backend: 'constructor'}, /unknown backend "constructor"/],
    [{backend: '__proto__://h'}, /unknown backend "__proto__"/],
  ])('rejects %o with a user error', (flags, message) => {
    const error = thrown(() => specFromFlags(flags, {}))
    expect(error).toBeInstanceOf(UserError)
    expect(formatError(error)).toMatch(message)
  })

  it('redacts passwords in URIs', () => {
    expect(redactUri('zk://user:pass@h:2181/base')).toBe('zk://user:***@h:2181/base')
    expect(redactUri('etcds://u:p@ss@h')).toBe('etcds://u:***@h')
    expect(redactUri('user:pass@h')).toBe('user:***@h')
    expect(redactUri('zk://h:2181/base')).toBe('zk://h:2181/base')
    expect(redactUri('zk://user@h')).toBe('zk://user@h')
    expect(describeBackend(parseBackend('zk://alice:s3cret@h/b', env))).toBe('zk://alice:***@h:2181/b')
  })

  it.each([
    'zk://u:topsecret@h:99999',
    'zk://u:topsecret@bad host',
    'etcd://u:topsecret@h/bad path!',
    'consul://u:topsecret@h/x',
    'mysql://u:topsecret@h',
    'u:topsecret@h',
    'zk://u:%ZZtopsecret@h',
    'zk://:topsecret@h',
    'etcd://u:topsecret@,',
  ])('never shows the password of %s in its error', (backend) => {
    const error = thrown(() => specFromFlags({backend}, {}))
    expect(error).toBeInstanceOf(UserError)
    expect(formatError(error)).not.toContain('topsecret')
  })

  it('never shows a password from ETCDCTL_USER or --zk-auth in its error', () => {
    expect(() => parseBackend('etcd://h', {ETCDCTL_USER: 'topsecret'})).toThrow(/ETCDCTL_USER is not user:password/)
    expect(() => parseBackend('etcd://h', {ETCDCTL_USER: 'topsecret'})).not.toThrow(/topsecret/)
    expect(() => specFromFlags({backend: 'zk://h', 'zk-auth': 'topsecret'}, {})).not.toThrow(/topsecret/)
  })
})
