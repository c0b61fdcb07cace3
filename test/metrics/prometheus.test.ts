import {createServer, request} from 'node:http'
import type {AddressInfo} from 'node:net'
import {afterEach, describe, expect, it} from 'vitest'

import {BugError, UserError} from '../../src/lib/errors.js'
import {CONTENT_TYPE, escapeLabelValue, Registry} from '../../src/lib/metrics/prometheus.js'
import {type MetricsServer, parseHostPort, serveMetrics} from '../../src/lib/metrics/server.js'

describe('Registry exposition', () => {
  it('writes counters and gauges with HELP, TYPE, labels and escaping', () => {
    const r = new Registry()
    const requests = r.counter({name: 'http_requests_total', help: 'Requests.\nBy code.', labelNames: ['code', 'path']})
    const up = r.gauge({name: 'up', help: String.raw`Up \ down.`})
    const empty = r.counter({name: 'empty_total', help: 'Labelled, never used.', labelNames: ['x']})
    requests.inc({code: 200, path: '/a'})
    requests.inc({code: 200, path: '/a'}, 2)
    requests.labels({code: '500', path: 'C:\\tmp "x"\nnext'}).inc()
    up.set(1)
    expect(empty.get({x: 'never'})).toBe(0)

    expect(r.metrics()).toBe(
      [
        String.raw`# HELP http_requests_total Requests.\nBy code.`,
        '# TYPE http_requests_total counter',
        'http_requests_total{code="200",path="/a"} 3',
        String.raw`http_requests_total{code="500",path="C:\\tmp \"x\"\nnext"} 1`,
        String.raw`# HELP up Up \\ down.`,
        '# TYPE up gauge',
        'up 1',
        '# HELP empty_total Labelled, never used.',
        '# TYPE empty_total counter',
        '',
      ].join('\n'),
    )
  })

  it('writes cumulative histogram buckets with +Inf, _sum and _count, per label set', () => {
    const r = new Registry()
    const latency = r.histogram({
      name: 'latency_seconds',
      help: 'Latency.',
      labelNames: ['service'],
      buckets: [0.1, 0.5, 1],
    })
    latency.observe({service: 'web'}, 0.05)
    latency.observe({service: 'web'}, 0.1)
    latency.observe({service: 'web'}, 0.7)
    latency.labels({service: 'db'}).observe(3)
    const plain = r.histogram({name: 'plain_seconds', help: 'No labels.', buckets: [1]})
    plain.observe(0.5)

    expect(r.metrics()).toBe(
      [
        '# HELP latency_seconds Latency.',
        '# TYPE latency_seconds histogram',
        'latency_seconds_bucket{service="web",le="0.1"} 2',
        'latency_seconds_bucket{service="web",le="0.5"} 2',
        'latency_seconds_bucket{service="web",le="1"} 3',
        'latency_seconds_bucket{service="web",le="+Inf"} 3',
        'latency_seconds_sum{service="web"} 0.85',
        'latency_seconds_count{service="web"} 3',
        'latency_seconds_bucket{service="db",le="0.1"} 0',
        'latency_seconds_bucket{service="db",le="0.5"} 0',
        'latency_seconds_bucket{service="db",le="1"} 0',
        'latency_seconds_bucket{service="db",le="+Inf"} 1',
        'latency_seconds_sum{service="db"} 3',
        'latency_seconds_count{service="db"} 1',
        '# HELP plain_seconds No labels.',
        '# TYPE plain_seconds histogram',
        'plain_seconds_bucket{le="1"} 1',
        'plain_seconds_bucket{le="+Inf"} 1',
        'plain_seconds_sum 0.5',
        'plain_seconds_count 1',
        '',
      ].join('\n'),
    )
  })

  it('exports unlabelled metrics as 0 before first use, and special values spelled out', () => {
    const r = new Registry()
    r.counter({name: 'errors_total', help: 'Errors.'})
    const g = r.gauge({name: 'g', help: 'G.', labelNames: ['k']})
    g.set({k: 'inf'}, Number.POSITIVE_INFINITY)
    g.set({k: 'nan'}, Number.NaN)
    g.set({k: 'neg'}, -2.5)
    expect(r.metrics()).toContain('errors_total 0\n')
    expect(r.metrics()).toContain('g{k="inf"} +Inf\ng{k="nan"} NaN\ng{k="neg"} -2.5\n')
  })

  it('runs collect hooks before rendering, and reset drops label sets', () => {
    const r = new Registry()
    const g = r.gauge({name: 'instances', help: 'I.', labelNames: ['service']})
    let services: Record<string, number> = {a: 1, b: 2}
    r.collect(() => {
      g.reset()
      for (const [service, n] of Object.entries(services)) g.set({service}, n)
    })
    expect(r.metrics()).toContain('instances{service="a"} 1\ninstances{service="b"} 2\n')
    services = {b: 3}
    expect(r.metrics()).not.toContain('service="a"')
    expect(r.metrics()).toContain('instances{service="b"} 3\n')
  })

  it('keeps label sets apart whatever their values contain, and removes one', () => {
    const r = new Registry()
    const c = r.counter({name: 'c_total', help: 'C.', labelNames: ['a', 'b']})
    c.inc({a: 'x', b: 'y'})
    c.inc({a: 'x', b: 'y'})
    c.inc({a: 'y', b: 'x'})
    c.inc({a: 'x\u0001y', b: ''})
    c.inc({a: 'x', b: 'y\u0001'}, 5)
    expect(c.get({a: 'x', b: 'y'})).toBe(2)
    expect(c.get({a: 'y', b: 'x'})).toBe(1)
    expect(c.get({a: 'x\u0001y', b: ''})).toBe(1)
    expect(c.get({a: 'x', b: 'y\u0001'})).toBe(5)
    expect(c.labels({a: 'x', b: 'y'})).toBe(c.labels({a: 'x', b: 'y'}))
    c.remove({a: 'x', b: 'y'})
    c.remove({a: 'nope', b: 'y'})
    expect(r.metrics()).not.toContain('c_total{a="x",b="y"}')
    expect(r.metrics()).toContain('c_total{a="y",b="x"} 1\n')
  })

  it('refuses invalid names, duplicates, negative increments and unsorted buckets as bugs', () => {
    const r = new Registry()
    expect(() => r.counter({name: '1bad', help: ''})).toThrow(BugError)
    expect(() => r.counter({name: 'ok_total', help: '', labelNames: ['__reserved']})).toThrow(BugError)
    expect(() => r.histogram({name: 'h', help: '', labelNames: ['le']})).toThrow(BugError)
    expect(() => r.histogram({name: 'h2', help: '', buckets: [1, 0.5]})).toThrow(BugError)
    r.counter({name: 'twice_total', help: ''})
    expect(() => r.gauge({name: 'twice_total', help: ''})).toThrow(BugError)
    const c = r.counter({name: 'c_total', help: ''})
    expect(() => c.inc(-1)).toThrow(BugError)
    expect(escapeLabelValue('a\\b"c\nd')).toBe(String.raw`a\\b\"c\nd`)
  })
})

describe('parseHostPort', () => {
  it('accepts host:port, [v6]:port and :port for every interface', () => {
    expect(parseHostPort('127.0.0.1:9100')).toEqual({host: '127.0.0.1', port: 9100})
    expect(parseHostPort('localhost:80')).toEqual({host: 'localhost', port: 80})
    expect(parseHostPort('[::1]:9100')).toEqual({host: '::1', port: 9100})
    expect(parseHostPort(':9100')).toEqual({host: '0.0.0.0', port: 9100})
  })

  it('names the flag and the expected form on bad input', () => {
    for (const bad of ['9100', 'host', 'host:', 'host:99999', 'a:1,b:2', '::1', 'bad host:1', 'h:x']) {
      expect(() => parseHostPort(bad), bad).toThrow(UserError)
    }

    expect(() => parseHostPort('host:99999')).toThrow('invalid --metrics address "host:99999": invalid port "99999"')
    try {
      parseHostPort('9100')
    } catch (error) {
      expect((error as UserError).hint).toContain('HOST:PORT')
    }
  })
})

interface Reply {
  status: number
  type?: string
  body: string
}

async function get(url: string, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, {method}, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        body += chunk
      })
      res.on('end', () => resolve({status: res.statusCode ?? 0, type: res.headers['content-type'], body}))
    })
    req.on('error', reject)
    req.end()
  })
}

describe('serveMetrics', () => {
  let server: MetricsServer | undefined
  afterEach(async () => {
    await server?.close()
    server = undefined
  })

  it('serves /metrics, /healthz and 404s on 127.0.0.1', async () => {
    let scrapes = 0
    server = await serveMetrics(
      () => {
        scrapes++
        return `scrapes ${scrapes}\n`
      },
      '127.0.0.1',
      0,
    )
    expect(server.address).toMatch(/^127\.0\.0\.1:\d+$/)
    expect(server.url).toBe(`http://${server.address}/metrics`)
    const base = `http://${server.address}`

    expect(await get(`${base}/metrics`)).toEqual({status: 200, type: CONTENT_TYPE, body: 'scrapes 1\n'})
    expect(await get(`${base}/metrics?x=1`)).toMatchObject({status: 200, body: 'scrapes 2\n'})
    expect(await get(`${base}/healthz`)).toMatchObject({status: 200, body: 'ok\n'})
    expect(await get(`${base}/`)).toMatchObject({status: 404})
    expect(await get(`${base}/metrics/extra`)).toMatchObject({status: 404})
    expect(await get(`${base}/metrics`, 'POST')).toMatchObject({status: 404})
  })

  it('answers 500 when rendering fails, and keeps serving', async () => {
    server = await serveMetrics(
      () => {
        throw new Error('boom')
      },
      '127.0.0.1',
      0,
    )
    expect(await get(`http://${server.address}/metrics`)).toMatchObject({
      status: 500,
      body: 'cannot render metrics: boom\n',
    })
    expect(await get(`http://${server.address}/healthz`)).toMatchObject({status: 200})
  })

  it('turns EADDRINUSE into a UserError naming the address and the fix', async () => {
    const blocker = createServer()
    await new Promise<void>((resolve) => {
      blocker.listen(0, '127.0.0.1', resolve)
    })
    const {port} = blocker.address() as AddressInfo
    try {
      const error = await serveMetrics(() => '', '127.0.0.1', port).then(
        () => undefined,
        (error: unknown) => error,
      )
      expect(error).toBeInstanceOf(UserError)
      expect((error as UserError).message).toBe(
        `cannot serve metrics on 127.0.0.1:${port}: the address is already in use`,
      )
      expect((error as UserError).hint).toContain('pick another port')
    } finally {
      await new Promise((resolve) => {
        blocker.close(resolve)
      })
    }
  })

  it('closes while a keep-alive connection is open', async () => {
    server = await serveMetrics(() => '', '127.0.0.1', 0)
    const {Agent} = await import('node:http')
    const agent = new Agent({keepAlive: true})
    await new Promise<void>((resolve, reject) => {
      request(`http://${server!.address}/healthz`, {agent}, (res) => {
        res.resume()
        res.on('end', resolve)
      })
        .on('error', reject)
        .end()
    })
    await server.close()
    server = undefined
    agent.destroy()
  })
})
