import {createServer, request} from 'node:http'
import type {AddressInfo} from 'node:net'
import {afterEach, describe, expect, it} from 'vitest'

import {UserError} from '../../src/lib/errors.js'
import type {Exposition} from '../../src/lib/metrics/registry.js'
import {type MetricsServer, parseHostPort, serveMetrics} from '../../src/lib/metrics/server.js'

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

const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

/** An exposition whose text comes from `render`, called per scrape. */
function exposition(render: () => string): Exposition {
  return {contentType: CONTENT_TYPE, metrics: async () => render()}
}

interface Reply {
  status: number
  type?: string
  allow?: string
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
      res.on('end', () => {
        const {allow} = res.headers
        resolve({status: res.statusCode ?? 0, type: res.headers['content-type'], ...(allow ? {allow} : {}), body})
      })
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
      exposition(() => {
        scrapes++
        return `scrapes ${scrapes}\n`
      }),
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
    expect(await get(`${base}/metrics`, 'POST')).toMatchObject({status: 405, allow: 'GET, HEAD'})
    expect(await get(`${base}/healthz`, 'DELETE')).toMatchObject({status: 405, allow: 'GET, HEAD'})
    expect(await get(`${base}/nothing`, 'POST')).toMatchObject({status: 404})
  })

  it('answers 500 when rendering fails, and keeps serving', async () => {
    server = await serveMetrics(
      exposition(() => {
        throw new Error('boom')
      }),
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
      const error = await serveMetrics(
        exposition(() => ''),
        '127.0.0.1',
        port,
      ).then(
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
    server = await serveMetrics(
      exposition(() => ''),
      '127.0.0.1',
      0,
    )
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
