import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'

import {formatError, UserError} from '../../src/lib/errors.js'
import {toConsulError} from '../../src/lib/registry/consul/errors.js'
import {
  deniedMessage,
  describePermission,
  policyRule,
  redactSecrets,
  requiredPermission,
  tlsProblem,
} from '../../src/lib/registry/consul/security.js'
import {describeBackend, parseBackend, specFromFlags} from '../../src/lib/registry/spec.js'

const dir = mkdtempSync(path.join(tmpdir(), 'svc-consul-security-'))
afterAll(() => rmSync(dir, {recursive: true, force: true}))
const tokenFile = path.join(dir, 'token')
writeFileSync(tokenFile, '  from-file-0123\n')

describe('consul backend spec', () => {
  it('turns on HTTPS with consul+https://, CONSUL_HTTP_SSL, or https:// in CONSUL_HTTP_ADDR', () => {
    expect(parseBackend('consul+https://c1:8501', {})).toEqual({
      kind: 'consul',
      hosts: [{host: 'c1', port: 8501}],
      https: true,
    })
    expect(parseBackend('consul', {CONSUL_HTTP_ADDR: 'https://c1:8501'})).toMatchObject({https: true})
    expect(parseBackend('consul://c1:8501', {CONSUL_HTTP_SSL: 'true'})).toMatchObject({https: true})
    expect(parseBackend('consul://c1:8500', {CONSUL_HTTP_SSL: 'false'})).not.toHaveProperty('https')
    expect(parseBackend('consul', {CONSUL_HTTP_ADDR: 'http://c1:8500'})).not.toHaveProperty('https')
    expect(describeBackend(parseBackend('consul+https://c1:8501', {}))).toBe('consul+https://c1:8501')
  })

  it('takes the TLS files from CONSUL_CACERT, CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY, and the flags over them', () => {
    const env = {CONSUL_CACERT: '/env/ca.pem', CONSUL_CLIENT_CERT: '/env/c.pem', CONSUL_CLIENT_KEY: '/env/k.pem'}
    expect(parseBackend('consul+https://c1', env)).toMatchObject({
      tls: {ca: '/env/ca.pem', cert: '/env/c.pem', key: '/env/k.pem'},
    })
    expect(specFromFlags({backend: 'consul+https://c1', cacert: '/flag/ca.pem'}, env)).toMatchObject({
      tls: {ca: '/flag/ca.pem', cert: '/env/c.pem'},
    })
    // plain HTTP has no use for them
    expect(parseBackend('consul://c1', env)).not.toHaveProperty('tls')
  })

  it('wants a client certificate and its key together', () => {
    expect(() => parseBackend('consul+https://c1', {CONSUL_CLIENT_CERT: '/c.pem'})).toThrow(
      /client certificate needs its key/,
    )
  })

  it('takes the token from --token, then CONSUL_HTTP_TOKEN, then the file CONSUL_HTTP_TOKEN_FILE names (trimmed)', () => {
    const env = {CONSUL_HTTP_TOKEN_FILE: tokenFile}
    expect(specFromFlags({backend: 'consul'}, env)).toMatchObject({token: 'from-file-0123'})
    expect(specFromFlags({backend: 'consul'}, {...env, CONSUL_HTTP_TOKEN: 'from-env'})).toMatchObject({
      token: 'from-env',
    })
    expect(
      specFromFlags({backend: 'consul', token: 'from-flag'}, {...env, CONSUL_HTTP_TOKEN: 'from-env'}),
    ).toMatchObject({
      token: 'from-flag',
    })
    expect(specFromFlags({backend: 'consul'}, {})).not.toHaveProperty('token')
  })

  it('names an unreadable or empty token file in one line, never its contents', () => {
    const missing = path.join(dir, 'missing')
    let error: unknown
    try {
      specFromFlags({backend: 'consul'}, {CONSUL_HTTP_TOKEN_FILE: missing})
    } catch (error_) {
      error = error_
    }

    expect(error).toBeInstanceOf(UserError)
    expect(formatError(error)).toMatch(new RegExp(`cannot read the Consul token file ${missing} .*\\(ENOENT\\)`))
    expect(formatError(error)).not.toContain('\n')
    const empty = path.join(dir, 'empty')
    writeFileSync(empty, ' \n')
    expect(() => parseBackend('consul', {CONSUL_HTTP_TOKEN_FILE: empty})).toThrow(/is empty/)
    // a token given another way wins: the file is not read at all
    expect(parseBackend('consul', {CONSUL_HTTP_TOKEN_FILE: missing, CONSUL_HTTP_TOKEN: 't'})).toMatchObject({
      token: 't',
    })
  })
})

describe('the permission a refused Consul request needs', () => {
  it.each([
    ['PUT', '/v1/agent/service/register', 'web', 'service:write on "web"', 'service "web" { policy = "write" }'],
    [
      'PUT',
      '/v1/agent/service/deregister/web-1',
      'web',
      'service:write on "web"',
      'service "web" { policy = "write" }',
    ],
    [
      'PUT',
      '/v1/agent/check/pass/service:web-1?note=x',
      'web',
      'service:write on "web"',
      'service "web" { policy = "write" }',
    ],
    ['PUT', '/v1/agent/service/maintenance/web-1?enable=true', 'web', 'service:write on "web"', undefined],
    ['PUT', '/v1/catalog/deregister', 'web', 'service:write on "web"', undefined],
    [
      'GET',
      '/v1/health/service/web?index=12&wait=30000ms',
      undefined,
      'service:read on "web"',
      'service "web" { policy = "read" }',
    ],
    ['GET', '/v1/catalog/services', undefined, 'service:read', 'service_prefix "" { policy = "read" }'],
    ['GET', '/v1/catalog/nodes', undefined, 'node:read', 'node_prefix "" { policy = "read" }'],
    ['GET', '/v1/agent/self', undefined, 'agent:read', 'agent_prefix "" { policy = "read" }'],
    ['GET', '/v1/agent/members', undefined, 'agent:read', undefined],
    ['GET', '/v1/operator/raft/configuration', undefined, 'operator:read', 'operator = "read"'],
    ['PUT', '/v1/kv/drill/1', undefined, 'key:write on "drill/1"', 'key "drill/1" { policy = "write" }'],
  ])('%s %s (about %s) needs %s', (method, apiPath, service, described, rule) => {
    const permission = requiredPermission(method, apiPath, service)
    expect(permission).toBeDefined()
    expect(describePermission(permission!)).toBe(described)
    if (rule !== undefined) expect(policyRule(permission!)).toBe(rule)
  })

  it('knows status endpoints need none', () => {
    expect(requiredPermission('GET', '/v1/status/leader')).toBeUndefined()
  })

  it('reads well with a token, without one, and with a token Consul does not know', () => {
    const permission = {resource: 'service', access: 'write', name: 'web'} as const
    expect(deniedMessage('Permission denied', permission, true)).toEqual({
      message: 'Consul refused the token: permission denied (service:write on "web")',
      hint: 'use a token whose policy grants service "web" { policy = "write" } (--token or CONSUL_HTTP_TOKEN)',
    })
    expect(deniedMessage('Permission denied', permission, false).message).toMatch(/svc sent no ACL token/)
    expect(deniedMessage('Permission denied', permission, false).hint).toMatch(/CONSUL_HTTP_TOKEN_FILE/)
    expect(deniedMessage('ACL not found', permission, true).message).toMatch(/does not know the ACL token/)
  })
})

/** The shape papi (the consul package's HTTP layer) gives a non-2xx answer. */
function responseError(status: number, body: string, method: string, reqPath: string): Error {
  return Object.assign(new Error(`consul: agent.service.register: ${body}`), {
    isResponse: true,
    response: {statusCode: status, body, req: {method, path: reqPath}},
  })
}

describe('toConsulError', () => {
  const secret = 'b1f5c0de-0000-4000-8000-5ec12e7c0ffe'

  it('turns a 403 into one line naming the permission, with the fix as hint', () => {
    const error = toConsulError(responseError(403, 'Permission denied', 'PUT', '/v1/agent/service/register'), {
      agent: '127.0.0.1:8500',
      token: secret,
      service: 'web',
    })
    expect(error.transient).toBe(false)
    expect(error.status).toBe(403)
    expect(formatError(error)).toBe(
      'Consul refused the token: permission denied (service:write on "web") (agent 127.0.0.1:8500): use a token whose policy grants service "web" { policy = "write" } (--token or CONSUL_HTTP_TOKEN)',
    )
  })

  it('never lets the token through, even when a driver echoes a URL or the body repeats it', () => {
    const echoed = responseError(500, `rpc error for token ${secret}`, 'GET', `/v1/health/service/web?token=${secret}`)
    const plain = Object.assign(
      new Error(`consul: health.service: GET /v1/health/service/web?index=3&token=${secret} failed`),
      {
        code: 'ESOMETHING',
      },
    )
    for (const error of [echoed, plain]) {
      const converted = toConsulError(error, {agent: 'a:1', token: secret})
      expect(formatError(converted)).not.toContain(secret)
      expect(converted.stack ?? '').not.toContain(secret)
    }

    expect(redactSecrets(`x?token=${secret}&wait=1s`, [])).toBe('x?token=REDACTED&wait=1s')
  })

  it('explains TLS failures in one line', () => {
    const untrusted = Object.assign(new Error('unable to verify the first certificate'), {
      code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    })
    expect(formatError(toConsulError(untrusted, {agent: '127.0.0.1:8501'}))).toBe(
      "TLS with consul agent 127.0.0.1:8501 failed: the agent's certificate is not trusted (UNABLE_TO_VERIFY_LEAF_SIGNATURE): pass the CA that signed the agent's certificate: --cacert or CONSUL_CACERT",
    )
    expect(tlsProblem('ERR_SSL_WRONG_VERSION_NUMBER', 'ssl3_get_record:wrong version number')?.detail).toMatch(
      /does not speak HTTPS/,
    )
    expect(tlsProblem('ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'sslv3 alert bad certificate')?.hint).toMatch(
      /--cert and --key/,
    )
    expect(tlsProblem('ERR_SSL_SOMETHING_ELSE', 'x')?.detail).toBe('the TLS handshake failed (ERR_SSL_SOMETHING_ELSE)')
    expect(tlsProblem('ECONNREFUSED', 'connect ECONNREFUSED')).toBeUndefined()
  })
})
