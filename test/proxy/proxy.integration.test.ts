import {createHash, randomBytes} from 'node:crypto'
import {request as httpRequest} from 'node:http'
import {connect} from 'node:net'
import {Readable} from 'node:stream'
import {setTimeout as sleep} from 'node:timers/promises'

import {Agent, request} from 'undici'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import WebSocket from 'ws'

import {valueOf} from '../../src/lib/metrics/registry.js'
import {runProxy, type RunningProxy} from '../../src/lib/proxy/index.js'
import {openRegistry} from '../../src/lib/registry/index.js'
import type {RegistrationHandle, Registry} from '../../src/lib/registry/types.js'
import {testBackends, uniqueService} from '../helpers/backends.js'
import {eventually} from '../helpers/cli.js'
import {startUpstream, type TestUpstream} from '../helpers/upstream.js'

/** Writes `text` on a raw connection to `address` and resolves with everything read until the server closes. */
async function raw(address: string, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const [host, port] = address.split(':')
    const socket = connect(Number(port), host!, () => socket.end(text))
    let out = ''
    socket.on('data', (d: Buffer) => {
      out += d.toString()
    })
    socket.on('close', () => resolve(out))
    socket.on('error', reject)
  })
}

// The gateway scenarios of the background article, and the failure cases, on the local backend and a real etcd cluster.
describe.each(testBackends(['local', 'etcd']))('svc proxy on $name', (backend) => {
  let registry: Registry
  let running: RunningProxy
  let base: string
  const agent = new Agent({connections: 32})
  const upstreams: TestUpstream[] = []
  const handles: RegistrationHandle[] = []
  const logs: string[] = []

  beforeAll(async () => {
    registry = await openRegistry(backend.uri)
    running = await runProxy(registry, {
      host: '127.0.0.1',
      port: 0,
      strategy: 'round-robin',
      connectTimeoutMs: 1000,
      timeoutMs: 10_000,
      admin: {host: '127.0.0.1', port: 0},
      log: (line) => logs.push(line),
    })
    base = `http://${running.address}`
  })

  afterAll(async () => {
    await running?.stop(2000)
    await Promise.allSettled(handles.map((h) => h.close()))
    await Promise.allSettled(upstreams.map((u) => u.kill()))
    await registry?.close()
    await agent.close()
  })

  const upstream = async (name: string): Promise<TestUpstream> => {
    const u = await startUpstream(name)
    upstreams.push(u)
    return u
  }

  const register = async (service: string, u: TestUpstream, health?: 'critical'): Promise<RegistrationHandle> => {
    const handle = await registry.register({
      service,
      id: u.name.replaceAll(' ', '-'),
      address: '127.0.0.1',
      port: u.port,
      health,
    })
    handles.push(handle)
    return handle
  }

  const available = (service: string): number => running.proxy.table.services.get(service)?.available ?? -1

  const get = async (path: string): Promise<{status: number; body: string; headers: Record<string, unknown>}> => {
    const res = await request(`${base}${path}`, {dispatcher: agent})
    return {status: res.statusCode, body: await res.body.text(), headers: res.headers}
  }

  it('scenarios 1 and 2: GET a service root, and a path with a query', async () => {
    const service = uniqueService('service-1')
    await register(service, await upstream('Service 1'))
    await eventually(async () => available(service) === 1, 5000)
    expect(await get(`/${service}/`)).toMatchObject({status: 200, body: 'This is Service 1.'})
    expect(await get(`/${service}`)).toMatchObject({status: 200, body: 'This is Service 1.'})
    expect(await get(`/${service}/user?id=1`)).toMatchObject({status: 200, body: "It's user 1."})
  })

  it('scenario 3: spreads requests over 2 instances', async () => {
    const service = uniqueService('service-2')
    const [a, b] = [await upstream('Service 2a'), await upstream('Service 2b')]
    await register(service, a)
    await register(service, b)
    await eventually(async () => available(service) === 2, 5000)
    const bodies = new Map<string, number>()
    for (let i = 0; i < 10; i++) {
      const {body} = await get(`/${service}/`)
      bodies.set(body, (bodies.get(body) ?? 0) + 1)
    }

    expect(bodies).toEqual(
      new Map([
        ['This is Service 2a.', 5],
        ['This is Service 2b.', 5],
      ]),
    )
  })

  it('scenario 4: stop one instance and start it again, with no failed request', async () => {
    const service = uniqueService('service-3')
    const [a, b] = [await upstream('Service 3a'), await upstream('Service 3b')]
    await register(service, a)
    let handleB = await register(service, b)
    await eventually(async () => available(service) === 2, 5000)
    const statuses: number[] = []
    const loopState = {on: true}
    const loop = (async () => {
      while (loopState.on) {
        statuses.push((await get(`/${service}/`)).status)
        await sleep(2)
      }
    })()
    await sleep(200)
    // stop: deregister, then the process goes away once the proxy has the change
    await handleB.close()
    await eventually(async () => available(service) === 1, 5000)
    await b.kill()
    const hitsBefore = b.hits
    await sleep(300)
    // start again on the same port
    await b.restart()
    handleB = await register(service, b)
    await eventually(async () => available(service) === 2, 5000)
    await eventually(async () => b.hits > hitsBefore, 5000)
    loopState.on = false
    await loop
    expect(statuses.length).toBeGreaterThan(20)
    expect(statuses.filter((s) => s !== 200)).toEqual([])
  })

  it('unknown service: 404 with a JSON body naming it', async () => {
    const res = await get('/no-such-service/x')
    expect(res.status).toBe(404)
    expect(res.headers['content-type']).toBe('application/json')
    expect(JSON.parse(res.body)).toEqual({error: 'unknown service "no-such-service"', service: 'no-such-service'})
  })

  it('no healthy instance: 503 with Retry-After', async () => {
    const service = uniqueService('sick')
    await register(service, await upstream('sick'), 'critical')
    await eventually(async () => running.proxy.table.services.get(service)?.upstreams.size === 1, 5000)
    const res = await get(`/${service}/`)
    expect(res.status).toBe(503)
    expect(res.headers['retry-after']).toBe('2')
    expect(JSON.parse(res.body)).toMatchObject({error: `no healthy instance of "${service}"`, service})
  })

  it('forwards headers: X-Forwarded-*, hop-by-hop removed, Host kept', async () => {
    const service = uniqueService('echo')
    await register(service, await upstream('echo'))
    await eventually(async () => available(service) === 1, 5000)
    const body = await new Promise<string>((resolve, reject) => {
      const req = httpRequest(`${base}/${service}/echo?q=1`, {
        headers: {
          Connection: 'keep-alive, X-Hop',
          'X-Hop': '1',
          'Keep-Alive': 'timeout=5',
          'X-Forwarded-For': '10.1.2.3',
        },
      })
      req.on('response', (res) => {
        let text = ''
        res.on('data', (d: Buffer) => {
          text += d.toString()
        })
        res.on('end', () => resolve(text))
      })
      req.on('error', reject)
      req.end()
    })
    const echoed = JSON.parse(body) as {url: string; headers: Record<string, string>}
    expect(echoed.url).toBe('/echo?q=1')
    // the client is no trusted proxy: the X-Forwarded-For it sent is replaced, not appended to
    expect(echoed.headers['x-forwarded-for']).toBe('127.0.0.1')
    expect(echoed.headers['x-forwarded-proto']).toBe('http')
    expect(echoed.headers['x-forwarded-host']).toBe(running.address)
    expect(echoed.headers.host).toBe(running.address)
    expect(echoed.headers['x-hop']).toBeUndefined()
    expect(echoed.headers['keep-alive']).toBeUndefined()
  })

  it('is never an open proxy: absolute-form targets and CONNECT are refused', async () => {
    expect(
      await raw(running.address, 'GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n'),
    ).toMatch(/^HTTP\/1\.1 400 /)
    expect(await raw(running.address, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n')).toMatch(
      /^HTTP\/1\.1 405 /,
    )
  })

  it('passes a WebSocket through (echo)', async () => {
    const service = uniqueService('ws')
    await register(service, await upstream('ws-a'))
    await eventually(async () => available(service) === 1, 5000)
    const ws = new WebSocket(`ws://${running.address}/${service}/chat`)
    const replies: string[] = []
    await new Promise<void>((resolve, reject) => {
      ws.on('open', () => {
        ws.send('hello')
        ws.send('again')
      })
      ws.on('message', (data) => {
        replies.push(String(data))
        if (replies.length === 2) resolve()
      })
      ws.on('error', reject)
    })
    ws.close()
    expect(replies).toEqual(['ws-a: hello', 'ws-a: again'])
  })

  it('streams a 50 MB upload, hashed on both ends', async () => {
    const service = uniqueService('upload')
    await register(service, await upstream('upload'))
    await eventually(async () => available(service) === 1, 5000)
    const chunk = 64 * 1024
    const count = 800
    const hash = createHash('sha256')
    async function* body(): AsyncGenerator<Buffer> {
      for (let i = 0; i < count; i++) {
        const data = randomBytes(chunk)
        hash.update(data)
        yield data
      }
    }

    const res = await request(`${base}/${service}/upload`, {
      method: 'POST',
      body: Readable.from(body()),
      dispatcher: agent,
    })
    const result = (await res.body.json()) as {bytes: number; sha256: string}
    expect(res.statusCode).toBe(200)
    expect(result).toEqual({bytes: chunk * count, sha256: hash.digest('hex')})
  })

  it('ejects a killed instance and retries its requests elsewhere, under bounded load', async () => {
    const service = uniqueService('fleet')
    const [a, b, c] = [await upstream('fleet-a'), await upstream('fleet-b'), await upstream('fleet-c')]
    for (const u of [a, b, c]) await register(service, u)
    await eventually(async () => available(service) === 3, 5000)
    const total = 1500
    const statuses: number[] = []
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < total) {
        next++
        if (next === 300) await c.kill()
        statuses.push((await get(`/${service}/`)).status)
      }
    }

    await Promise.all(Array.from({length: 16}, () => worker()))
    expect(statuses.length).toBeGreaterThanOrEqual(total)
    expect(statuses.filter((s) => s !== 200)).toEqual([])
    const {metrics} = running.proxy
    expect(await valueOf(metrics.ejections, {service, instance: 'fleet-c'})).toBeGreaterThanOrEqual(1)
    expect(await valueOf(metrics.retries, {service})).toBeGreaterThan(0)
    // the killed instance was never deregistered: it is still in the table, ejected or waiting out its backoff
    const text = await (await request(`http://${running.adminAddress}/metrics`, {dispatcher: agent})).body.text()
    expect(text).toContain(`svc_proxy_ejections_total{service="${service}",instance="fleet-c"}`)
    expect(text).toContain(`svc_proxy_requests_total{service="${service}",code="200"}`)
    const routes = (await (
      await request(`http://${running.adminAddress}/routes`, {dispatcher: agent})
    ).body.json()) as Array<{
      service: string
      instances: Array<{id: string}>
    }>
    expect(
      routes
        .find((r) => r.service === service)
        ?.instances.map((i) => i.id)
        .sort(),
    ).toEqual(['fleet-a', 'fleet-b', 'fleet-c'])
  })
})

describe('svc proxy routing options (local backend)', () => {
  const [backend] = testBackends(['local'])
  let registry: Registry
  let running: RunningProxy
  const upstreams: TestUpstream[] = []
  const handles: RegistrationHandle[] = []
  const api = uniqueService('api')
  const web = uniqueService('web')

  beforeAll(async () => {
    registry = await openRegistry(backend!.uri)
    for (const [service, name] of [
      [api, 'api-1'],
      [api, 'api-2'],
      [api, 'api-3'],
      [web, 'web-1'],
    ] as const) {
      const u = await startUpstream(name)
      upstreams.push(u)
      handles.push(await registry.register({service, id: name, address: '127.0.0.1', port: u.port}))
    }

    running = await runProxy(registry, {
      host: '127.0.0.1',
      port: 0,
      strategy: 'hash',
      hashKey: {kind: 'header', name: 'x-user'},
      routes: [{prefix: '/v2/api', service: api}],
      hostRouting: true,
      connectTimeoutMs: 1000,
      timeoutMs: 5000,
      log() {},
    })
    await eventually(async () => running.proxy.table.services.get(api)?.available === 3, 5000)
  })

  afterAll(async () => {
    await running?.stop(1000)
    await Promise.allSettled(handles.map((h) => h.close()))
    await Promise.allSettled(upstreams.map((u) => u.kill()))
    await registry?.close()
  })

  const upstreamOf = async (path: string, headers: Record<string, string> = {}): Promise<string> => {
    const res = await request(`http://${running.address}${path}`, {headers})
    await res.body.dump()
    expect(res.statusCode).toBe(200)
    return String(res.headers['x-upstream'])
  }

  it('hashes on a header: one user, one instance; users spread', async () => {
    const seen = new Set<string>()
    for (let user = 0; user < 30; user++) {
      const first = await upstreamOf(`/${api}/`, {'x-user': `user-${user}`})
      for (let again = 0; again < 3; again++)
        expect(await upstreamOf(`/${api}/`, {'x-user': `user-${user}`})).toBe(first)
      seen.add(first)
    }

    expect(seen).toEqual(new Set(['api-1', 'api-2', 'api-3']))
  })

  it('routes an explicit prefix and a Host name', async () => {
    expect(await upstreamOf('/v2/api/user?id=3', {'x-user': 'a'})).toMatch(/^api-/)
    expect(await upstreamOf('/user?id=3', {host: `${web}.svc.example`})).toBe('web-1')
  })
})

/** Writes `text` on a raw connection without ending it; resolves with everything read until the server closes. */
async function converse(address: string, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const [host, port] = address.split(':')
    const socket = connect(Number(port), host!, () => socket.write(text))
    let out = ''
    socket.setTimeout(5000, () => socket.destroy(new Error(`no close after: ${out}`)))
    socket.on('data', (d: Buffer) => {
      out += d.toString('latin1')
    })
    socket.on('close', () => resolve(out))
    socket.on('error', reject)
  })
}

describe('svc proxy HTTP/1.1 on raw connections (local backend)', () => {
  const [backend] = testBackends(['local'])
  let registry: Registry
  let running: RunningProxy
  let upstream: TestUpstream
  let handle: RegistrationHandle
  const service = uniqueService('raw')

  beforeAll(async () => {
    registry = await openRegistry(backend!.uri)
    upstream = await startUpstream('raw-1')
    handle = await registry.register({service, id: 'raw-1', address: '127.0.0.1', port: upstream.port})
    running = await runProxy(registry, {
      host: '127.0.0.1',
      port: 0,
      strategy: 'round-robin',
      connectTimeoutMs: 1000,
      timeoutMs: 5000,
      log() {},
    })
    await eventually(async () => running.proxy.table.services.get(service)?.available === 1, 5000)
  })

  afterAll(async () => {
    await running?.stop(1000)
    await handle?.close()
    await upstream?.kill()
    await registry?.close()
  })

  it('answers pipelined requests in order, the last one closing', async () => {
    const out = await converse(
      running.address,
      `GET /${service}/user?id=1 HTTP/1.1\r\nHost: a\r\n\r\nGET /nope/x HTTP/1.1\r\nHost: a\r\n\r\n` +
        `GET /${service}/user?id=2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`,
    )
    expect(out.match(/HTTP\/1\.1 \d{3}/g)).toEqual(['HTTP/1.1 200', 'HTTP/1.1 404', 'HTTP/1.1 200'])
    expect(out).toMatch(/It's user 1\.[\s\S]*unknown service[\s\S]*It's user 2\.$/)
  })

  it('serves an HTTP/1.0 client that sends no Host', async () => {
    const out = await converse(running.address, `GET /${service}/ HTTP/1.0\r\n\r\n`)
    expect(out).toMatch(/^HTTP\/1\.1 200 OK\r\n/)
    expect(out).toMatch(/\r\nconnection: close\r\n/i)
    expect(out.endsWith('This is raw-1.')).toBe(true)
  })

  it('forwards a chunked request body and answers Expect: 100-continue', async () => {
    const out = await converse(
      running.address,
      `POST /${service}/upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n` +
        'Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n',
    )
    expect(out).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/)
    const sha256 = createHash('sha256').update('hello world').digest('hex')
    expect(JSON.parse(out.slice(out.lastIndexOf('\r\n\r\n') + 4))).toEqual({bytes: 11, sha256})
  })

  it('answers 431 to an oversized head and 400 to a malformed one, then closes', async () => {
    expect(
      await converse(running.address, `GET /${service}/ HTTP/1.1\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`),
    ).toMatch(/^HTTP\/1\.1 431 /)
    expect(await converse(running.address, `GET /${service}/ HTTP/1.1\r\nNo colon here\r\n\r\n`)).toMatch(
      /^HTTP\/1\.1 400 /,
    )
  })
})
