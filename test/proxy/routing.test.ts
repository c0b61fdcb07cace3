import {describe, expect, it} from 'vitest'

import {UserError} from '../../src/lib/errors.js'
import {parseHashKey, cookieValue} from '../../src/lib/proxy/hash-key.js'
import {downstreamHeaders, isHopByHop, upstreamHeaders} from '../../src/lib/proxy/headers.js'
import {parseRouteSpec, RouteTable, type UpstreamPool} from '../../src/lib/proxy/routes.js'
import type {ServiceInstance} from '../../src/lib/registry/types.js'

// the table only opens and closes pools; routing needs no connection
const pool = (): UpstreamPool & {closed: boolean} => {
  const p = {
    closed: false,
    async close() {
      p.closed = true
    },
    async destroy() {
      p.closed = true
    },
  }
  return p
}

const inst = (service: string, port: number, extra: Partial<ServiceInstance> = {}): ServiceInstance => ({
  service,
  id: `${service}-${port}`,
  address: '127.0.0.1',
  port,
  tags: [],
  meta: {},
  health: 'passing',
  ...extra,
})

const table = (opts: {routes?: string[]; hostRouting?: boolean} = {}) =>
  new RouteTable({
    strategy: 'round-robin',
    routes: (opts.routes ?? []).map((r) => parseRouteSpec(r)),
    hostRouting: opts.hostRouting,
    createPool: pool,
  })

describe('route matching', () => {
  it('sends /<service>/<path> to /<path> with the query kept', () => {
    const t = table()
    t.apply({type: 'snapshot', instances: [inst('web', 1)]})
    expect(t.match('/web/users/1?id=1&x=2', undefined)).toMatchObject({service: 'web', path: '/users/1?id=1&x=2'})
    expect(t.match('/web', undefined)).toMatchObject({service: 'web', path: '/'})
    expect(t.match('/web/', undefined)).toMatchObject({service: 'web', path: '/'})
    expect(t.match('/web?id=1', undefined)).toMatchObject({service: 'web', path: '/?id=1'})
    expect(t.match('/web/x', undefined)?.route?.name).toBe('web')
  })

  it('names an unknown service, and nothing for a bare /', () => {
    const t = table()
    expect(t.match('/nope/x', undefined)).toEqual({service: 'nope', route: undefined, path: '/x'})
    expect(t.match('/', undefined)).toBeUndefined()
    expect(t.match('/?q=1', undefined)).toBeUndefined()
  })

  it('prefers the longest explicit prefix, at segment boundaries only', () => {
    const t = table({routes: ['/api=api-v1', '/api/v2=api-v2', 'static/=files']})
    expect(t.match('/api/v2/users', undefined)).toMatchObject({service: 'api-v2', path: '/users'})
    expect(t.match('/api/v2', undefined)).toMatchObject({service: 'api-v2', path: '/'})
    expect(t.match('/api/v2?x=1', undefined)).toMatchObject({service: 'api-v2', path: '/?x=1'})
    expect(t.match('/api/v1/users', undefined)).toMatchObject({service: 'api-v1', path: '/v1/users'})
    expect(t.match('/static/a.css', undefined)).toMatchObject({service: 'files', path: '/a.css'})
    // /apix is not under /api: path routing names service "apix"
    expect(t.match('/apix/y', undefined)).toMatchObject({service: 'apix', route: undefined})
  })

  it('a / route catches everything', () => {
    const t = table({routes: ['/=web']})
    expect(t.match('/anything/at/all?q', undefined)).toMatchObject({service: 'web', path: '/anything/at/all?q'})
  })

  it('routes by Host with --host-routing, dotted service names included', () => {
    const t = table({hostRouting: true})
    t.apply({type: 'snapshot', instances: [inst('web', 1), inst('api.v2', 2)]})
    expect(t.match('/x?y', 'web.example.com:8080')).toMatchObject({service: 'web', path: '/x?y'})
    expect(t.match('/x', 'api.v2.svc.local')).toMatchObject({service: 'api.v2', path: '/x'})
    // no service in the host: path routing
    expect(t.match('/web/x', 'localhost:8080')).toMatchObject({service: 'web', path: '/x'})
  })

  it('parses --route and rejects bad ones with a hint', () => {
    expect(parseRouteSpec('/api/=api')).toEqual({prefix: '/api', service: 'api'})
    expect(parseRouteSpec('api=api')).toEqual({prefix: '/api', service: 'api'})
    expect(parseRouteSpec('/=web')).toEqual({prefix: '/', service: 'web'})
    for (const bad of ['api', '=web', '/api=', '/a?b=web', '/api=bad name']) {
      expect(() => parseRouteSpec(bad), bad).toThrow(UserError)
    }

    expect(() => parseRouteSpec('nope')).toThrow('invalid --route "nope"')
  })
})

describe('route table from watch events', () => {
  it('keeps only passing instances in rotation, and follows changes', () => {
    const t = table()
    t.apply({type: 'snapshot', instances: [inst('web', 1), inst('web', 2, {health: 'critical'})]})
    const route = t.services.get('web')!
    expect(route.balancer.targets.map((u) => u.instance.port)).toEqual([1])
    t.apply({type: 'changed', instance: inst('web', 2), previous: inst('web', 2, {health: 'critical'})})
    expect(route.balancer.targets.map((u) => u.instance.port).sort()).toEqual([1, 2])
    t.apply({type: 'changed', instance: inst('web', 1, {health: 'warning'}), previous: inst('web', 1)})
    expect(route.balancer.targets.map((u) => u.instance.port)).toEqual([2])
    t.apply({type: 'removed', instance: inst('web', 2)})
    expect(route.available).toBe(0)
    // the service stays known: 503, not 404
    expect(t.match('/web/', undefined)?.route).toBe(route)
  })

  it('keeps an instance’s pool across meta changes and replaces it when its address moves', () => {
    const t = table()
    t.apply({type: 'snapshot', instances: [inst('web', 1)]})
    const first = t.services.get('web')!.upstreams.get('web-1')!
    t.apply({type: 'changed', instance: inst('web', 1, {meta: {weight: '3'}}), previous: inst('web', 1)})
    const same = t.services.get('web')!.upstreams.get('web-1')!
    expect(same).toBe(first)
    expect(same.weight).toBe(3)
    t.apply({type: 'changed', instance: inst('web', 1, {port: 9}), previous: inst('web', 1)})
    const moved = t.services.get('web')!.upstreams.get('web-1')!
    expect(moved).not.toBe(first)
    expect((first.pool as ReturnType<typeof pool>).closed).toBe(true)
  })

  it('a later snapshot (after a reconnect) drops what is gone and keeps what stays', () => {
    const t = table()
    t.apply({type: 'snapshot', instances: [inst('web', 1), inst('web', 2), inst('api', 3)]})
    const kept = t.services.get('web')!.upstreams.get('web-1')
    t.apply({type: 'snapshot', instances: [inst('web', 1)]})
    expect([...t.services.get('web')!.upstreams.keys()]).toEqual(['web-1'])
    expect(t.services.get('web')!.upstreams.get('web-1')).toBe(kept)
    expect(t.services.get('api')!.available).toBe(0)
  })

  it('describes itself for /routes', () => {
    const t = table({routes: ['/v1=web']})
    t.apply({type: 'snapshot', instances: [inst('web', 1), inst('web', 2, {health: 'critical'})]})
    expect(t.snapshot()).toEqual([
      {
        service: 'web',
        prefixes: ['/v1'],
        available: 1,
        instances: [
          {id: 'web-1', address: '127.0.0.1:1', health: 'passing', weight: 1, inflight: 0, state: 'in-rotation'},
          {id: 'web-2', address: '127.0.0.1:2', health: 'critical', weight: 1, inflight: 0, state: 'unhealthy'},
        ],
      },
    ])
  })
})

describe('headers', () => {
  it('drops hop-by-hop headers and those Connection names; sets X-Forwarded-*', () => {
    const raw = [
      'Host',
      'web.local:8080',
      'Connection',
      'keep-alive, X-Secret',
      'Keep-Alive',
      'timeout=5',
      'TE',
      'trailers',
      'Transfer-Encoding',
      'chunked',
      'Proxy-Authorization',
      'Basic x',
      'Upgrade',
      'h2c',
      'X-Secret',
      's',
      'X-Forwarded-For',
      '10.0.0.1',
      'X-Forwarded-Proto',
      'https',
      'Accept',
      '*/*',
    ]
    expect(upstreamHeaders(raw, '127.0.0.1').block).toBe(
      [
        'Host: web.local:8080',
        'Accept: */*',
        'x-forwarded-for: 127.0.0.1',
        'x-forwarded-proto: http',
        'x-forwarded-host: web.local:8080',
        '',
      ].join('\r\n'),
    )
  })

  it("drops a client's forwarding headers, and keeps a trusted proxy's", () => {
    const raw = [
      'Host',
      'web.local',
      'X-Forwarded-For',
      '10.0.0.1',
      'x-forwarded-for',
      '10.0.0.2',
      'X-Forwarded-Proto',
      'https',
      'X-Forwarded-Host',
      'evil.example',
      'Forwarded',
      'for=10.0.0.1',
      'X-Real-IP',
      '10.0.0.1',
    ]
    expect(upstreamHeaders(raw, '192.0.2.7').block).toBe(
      [
        'Host: web.local',
        'x-forwarded-for: 192.0.2.7',
        'x-forwarded-proto: http',
        'x-forwarded-host: web.local',
        '',
      ].join('\r\n'),
    )
    expect(upstreamHeaders(raw, '192.0.2.7', false, true).block).toBe(
      [
        'Host: web.local',
        'Forwarded: for=10.0.0.1',
        'X-Real-IP: 10.0.0.1',
        'x-forwarded-for: 10.0.0.1, 10.0.0.2, 192.0.2.7',
        'x-forwarded-proto: https',
        'x-forwarded-host: evil.example',
        '',
      ].join('\r\n'),
    )
  })

  it('keeps Upgrade for a WebSocket handshake', () => {
    const raw = ['Connection', 'Upgrade', 'Upgrade', 'websocket', 'Sec-WebSocket-Key', 'k']
    expect(upstreamHeaders(raw, '::1', true).block).toBe(
      [
        'Connection: Upgrade',
        'Upgrade: websocket',
        'Sec-WebSocket-Key: k',
        'x-forwarded-for: ::1',
        'x-forwarded-proto: http',
        '',
      ].join('\r\n'),
    )
  })

  it('tells whether the request has a body', () => {
    expect(upstreamHeaders(['Content-Length', '0'], 'ip').hasBody).toBe(false)
    expect(upstreamHeaders(['content-length', '12'], 'ip').hasBody).toBe(true)
    expect(upstreamHeaders(['Transfer-Encoding', 'chunked'], 'ip').hasBody).toBe(true)
    expect(upstreamHeaders(['Host', 'x'], 'ip').hasBody).toBe(false)
  })

  it('cleans response headers', () => {
    const raw = [
      'content-type',
      'text/plain',
      'Connection',
      'keep-alive, x-hop',
      'x-hop',
      '1',
      'Keep-Alive',
      'timeout=5',
    ]
    expect(downstreamHeaders(raw).block).toBe('content-type: text/plain\r\n')
  })

  it('knows the hop-by-hop names in any case', () => {
    for (const name of [
      'connection',
      'KEEP-ALIVE',
      'Te',
      'trailer',
      'Transfer-Encoding',
      'upgrade',
      'Proxy-Connection',
    ]) {
      expect(isHopByHop(name), name).toBe(true)
    }

    for (const name of ['content-length', 'host', 'tea', 'proxy', 'x-proxy-id'])
      expect(isHopByHop(name), name).toBe(false)
  })
})

describe('hash keys', () => {
  it('parses header, cookie and ip', () => {
    expect(parseHashKey('header:X-User')).toEqual({kind: 'header', name: 'x-user'})
    expect(parseHashKey('cookie:session')).toEqual({kind: 'cookie', name: 'session'})
    expect(parseHashKey('ip')).toEqual({kind: 'ip'})
    expect(() => parseHashKey('body:x')).toThrow('invalid --hash-key "body:x"')
  })

  it('reads a cookie', () => {
    expect(cookieValue('a=1; session=abc; b=2', 'session')).toBe('abc')
    expect(cookieValue('a=1', 'session')).toBeUndefined()
    expect(cookieValue(undefined, 'session')).toBeUndefined()
  })
})
