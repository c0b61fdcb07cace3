import {createHash} from 'node:crypto'
import {createServer, type Server} from 'node:http'
import {type ClientHttp2Session, connect, type IncomingHttpHeaders} from 'node:http2'
import type {AddressInfo} from 'node:net'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {type ProxyEngineName, runProxy, type RunningProxy} from '../../src/lib/proxy/index.js'
import {openRegistry} from '../../src/lib/registry/index.js'
import type {RegistrationHandle, Registry} from '../../src/lib/registry/types.js'
import {testBackends, uniqueService} from '../helpers/backends.js'
import {eventually} from '../helpers/cli.js'

const BIG = 2 * 1024 * 1024

/** An HTTP/1.1 upstream with the answers an HTTP/2 client's request can meet; counts the connections it accepts. */
async function startH1Upstream(): Promise<{server: Server; port: number; connections: () => number}> {
  let connections = 0
  const server = createServer((req, res) => {
    const url = req.url ?? '/'
    if (url.startsWith('/hello')) {
      res.setHeader('x-upstream', 'h1')
      res.end('hello over h1\n')
    } else if (url.startsWith('/big')) {
      const piece = Buffer.alloc(64 * 1024, 'x')
      let left = BIG / piece.length
      const more = (): void => {
        while (left > 0) {
          left--
          if (!res.write(piece)) {
            res.once('drain', more)
            return
          }
        }

        res.end()
      }

      more()
    } else if (url.startsWith('/body')) {
      const hash = createHash('sha256')
      let bytes = 0
      req.on('data', (chunk: Buffer) => {
        hash.update(chunk)
        bytes += chunk.length
      })
      req.on('end', () => {
        res.end(JSON.stringify({sha256: hash.digest('hex'), bytes, chunked: req.headers['transfer-encoding'] ?? null}))
      })
    } else if (url.startsWith('/trailers')) {
      res.writeHead(200, {trailer: 'x-checksum'})
      res.write('with trailers')
      res.addTrailers({'x-checksum': 'abc123'})
      res.end()
    } else if (url.startsWith('/nothing')) {
      res.writeHead(204).end()
    } else if (url.startsWith('/die')) {
      res.writeHead(200, {'content-length': '100000'})
      res.write('only the start')
      setTimeout(() => req.socket.destroy(), 50)
    } else if (url.startsWith('/hang')) {
      res.writeHead(200)
      res.write('then nothing')
    } else {
      res.writeHead(404).end()
    }
  })
  server.on('connection', () => connections++)
  await new Promise<void>((resolve) => {
    server.listen(0, '127.0.0.1', resolve)
  })
  return {server, port: (server.address() as AddressInfo).port, connections: () => connections}
}

interface H2Answer {
  status: number
  headers: IncomingHttpHeaders
  trailers: IncomingHttpHeaders
  body: Buffer
  reset?: string
}

function h2request(session: ClientHttp2Session, headers: Record<string, string>, body?: Buffer[]): Promise<H2Answer> {
  return new Promise((resolve) => {
    const req = session.request(headers, {endStream: body === undefined})
    const chunks: Buffer[] = []
    const answer: H2Answer = {status: 0, headers: {}, trailers: {}, body: Buffer.alloc(0)}
    req.setTimeout(10_000, () => req.close())
    req.on('response', (head) => {
      answer.status = Number(head[':status'])
      answer.headers = head
    })
    req.on('trailers', (trailers) => {
      answer.trailers = trailers
    })
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('error', (error: Error) => {
      answer.reset = error.message
    })
    req.on('close', () => {
      answer.body = Buffer.concat(chunks)
      if (req.rstCode !== 0 && answer.reset === undefined) answer.reset = `rst ${req.rstCode}`
      resolve(answer)
    })
    if (body !== undefined) {
      for (const piece of body) req.write(piece)
      req.end()
    }
  })
}

// An HTTP/2 client's requests to an HTTP/1.1 instance: on the llhttp engine they ride its own connection pool
// (h2/forward-pooled.ts), on the node:http engine a node:http client request (h2/forward-h1.ts); the same answers.
describe.each(['llhttp', 'node-http'] as ProxyEngineName[])('HTTP/2 to an HTTP/1.1 upstream (%s engine)', (engine) => {
  const [backend] = testBackends(['local'])
  const service = uniqueService('h2fwd')
  let registry: Registry
  let handle: RegistrationHandle
  let upstream: Awaited<ReturnType<typeof startH1Upstream>>
  let running: RunningProxy
  let session: ClientHttp2Session
  const get = async (path: string, extra: Record<string, string> = {}): Promise<H2Answer> =>
    h2request(session, {':path': `/${service}${path}`, ...extra})
  const inflight = (): number => {
    const route = running.proxy.table.services.get(service)
    return [...(route?.upstreams.values() ?? [])].reduce((sum, u) => sum + u.inflight, 0)
  }

  beforeAll(async () => {
    registry = await openRegistry(backend!.uri)
    upstream = await startH1Upstream()
    handle = await registry.register({service, id: 'h1', address: '127.0.0.1', port: upstream.port})
    running = await runProxy(registry, {
      host: '127.0.0.1',
      port: 0,
      strategy: 'round-robin',
      connectTimeoutMs: 1000,
      timeoutMs: 1500,
      listeners: {plain: {host: '127.0.0.1', port: 0}, h2c: true},
      engine: {env: engine},
      log() {},
    })
    await eventually(async () => running.proxy.table.services.get(service)?.available === 1, 5000)
    session = connect(`http://${running.address}`)
    session.on('error', () => {})
  })

  afterAll(async () => {
    session?.close()
    await running?.stop(1000)
    await handle?.close()
    await registry?.close()
    upstream?.server.closeAllConnections()
    await new Promise<void>((resolve) => {
      upstream?.server.close(() => resolve())
    })
  })

  it('answers GETs with the upstream head, over a few kept-alive connections, and HEAD and 204 with no body', async () => {
    const before = upstream.connections()
    for (let i = 0; i < 20; i++) {
      const answer = await get('/hello')
      expect(answer.status).toBe(200)
      expect(answer.headers['x-upstream']).toBe('h1')
      expect(answer.body.toString()).toBe('hello over h1\n')
    }

    expect(upstream.connections() - before).toBeLessThanOrEqual(2)
    const head = await get('/hello', {':method': 'HEAD'})
    expect(head.status).toBe(200)
    expect(head.body.length).toBe(0)
    const none = await get('/nothing')
    expect(none.status).toBe(204)
    expect(none.body.length).toBe(0)
  })

  it('streams a 2 MB response under HTTP/2 flow control, and many at once', async () => {
    const answers = await Promise.all(Array.from({length: 8}, async () => get('/big')))
    for (const answer of answers) {
      expect(answer.status).toBe(200)
      expect(answer.body.length).toBe(BIG)
    }
  })

  it('sends request bodies with their length, or chunked when the HTTP/2 request has none', async () => {
    const pieces = Array.from({length: 16}, (_, i) => Buffer.alloc(32 * 1024, String.fromCodePoint(97 + i)))
    const whole = Buffer.concat(pieces)
    const sha256 = createHash('sha256').update(whole).digest('hex')
    const sized = await h2request(
      session,
      {':method': 'POST', ':path': `/${service}/body`, 'content-length': String(whole.length)},
      pieces,
    )
    expect(JSON.parse(sized.body.toString())).toEqual({sha256, bytes: whole.length, chunked: null})
    const unsized = await h2request(session, {':method': 'POST', ':path': `/${service}/body`}, pieces)
    expect(JSON.parse(unsized.body.toString())).toEqual({sha256, bytes: whole.length, chunked: 'chunked'})
  })

  it('passes the trailers of a chunked response as HTTP/2 trailers', async () => {
    const answer = await get('/trailers')
    expect(answer.body.toString()).toBe('with trailers')
    expect(answer.trailers['x-checksum']).toBe('abc123')
  })

  it('resets the stream when the upstream dies in the middle of its body, and times out one that stalls', async () => {
    const died = await get('/die')
    expect(died.status).toBe(200)
    expect(died.reset).toBeDefined()
    expect(died.body.toString()).toBe('only the start')
    const hung = await get('/hang')
    expect(hung.reset).toBeDefined()
    await eventually(async () => inflight() === 0, 5000)
  })

  it('gives up the upstream request when the client resets its stream, and keeps serving', async () => {
    await new Promise<void>((resolve) => {
      const req = session.request({':path': `/${service}/hang`})
      req.on('error', () => {})
      req.once('response', () => {
        req.close()
        resolve()
      })
    })
    await eventually(async () => inflight() === 0, 5000)
    expect((await get('/hello')).status).toBe(200)
  })
})
