import {request as httpRequest} from 'node:http'
import {type AddressInfo, connect, createServer, type Server, type Socket} from 'node:net'
import {setTimeout as sleep} from 'node:timers/promises'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {runProxy, type RunningProxy} from '../../src/lib/proxy/index.js'
import {parseTrustedProxies} from '../../src/lib/proxy/trust.js'
import {openRegistry} from '../../src/lib/registry/index.js'
import type {RegistrationHandle, Registry} from '../../src/lib/registry/types.js'
import {testBackends, uniqueService} from '../helpers/backends.js'
import {eventually} from '../helpers/cli.js'
import {startUpstream, type TestUpstream} from '../helpers/upstream.js'

interface Conversation {
  out: string
  /** ms from connecting to the server closing the connection. */
  closedAfterMs: number
  /** Bytes the client managed to write. */
  written: number
}

/**
 * Connects, writes `head` and then `drip` one byte every `everyMs` (a slow client), and resolves with what was read
 * when the server closes the connection, or after `limitMs` (then the client gives up).
 */
async function slowClient(address: string, head: string, drip: string, everyMs: number, limitMs: number) {
  return new Promise<Conversation>((resolve, reject) => {
    const [host, port] = address.split(':')
    const started = Date.now()
    let out = ''
    let written = 0
    let timer: NodeJS.Timeout | undefined
    const socket: Socket = connect(Number(port), host!, () => {
      socket.write(head)
      written += head.length
      let i = 0
      timer = setInterval(() => {
        if (i >= drip.length || socket.destroyed) return
        socket.write(drip[i++]!)
        written++
      }, everyMs)
    })
    const giveUp = setTimeout(() => socket.destroy(), limitMs)
    socket.on('data', (d: Buffer) => {
      out += d.toString('latin1')
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      clearInterval(timer)
      clearTimeout(giveUp)
      resolve({out, closedAfterMs: Date.now() - started, written})
    })
    socket.on('timeout', () => reject(new Error('unreachable')))
  })
}

/** Writes `text` (not ending the connection) and resolves with everything read until the server closes. */
async function converse(address: string, text: string): Promise<string> {
  return (await slowClient(address, text, '', 1000, 5000)).out
}

/** GET through the proxy with raw headers; resolves with the status and the upstream's echo of the request. */
async function echo(
  base: string,
  path: string,
  headers: Record<string, string>,
): Promise<{status: number; url: string; headers: Record<string, string>}> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${base}${path}`, {headers, agent: false})
    req.on('response', (res) => {
      let text = ''
      res.on('data', (d: Buffer) => {
        text += d.toString()
      })
      res.on('end', () => {
        const parsed =
          res.statusCode === 200 ? (JSON.parse(text) as {url: string; headers: Record<string, string>}) : undefined
        resolve({status: res.statusCode ?? 0, url: parsed?.url ?? '', headers: parsed?.headers ?? {}})
      })
    })
    req.on('error', reject)
    req.end()
  })
}

/**
 * An upstream that answers every request with a 103 Early Hints, then a chunked 200 with 40 header fields (more
 * than the parser hands over in one batch) and a trailer.
 */
async function startRawUpstream(): Promise<{server: Server; port: number}> {
  const fields = Array.from({length: 40}, (_, i) => `x-field-${i}: ${i}\r\n`).join('')
  const server = createServer((socket) => {
    socket.on('error', () => {})
    let seen = ''
    socket.on('data', (d: Buffer) => {
      seen += d.toString('latin1')
      while (seen.includes('\r\n\r\n')) {
        seen = seen.slice(seen.indexOf('\r\n\r\n') + 4)
        socket.write(
          'HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n' +
            `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\n${fields}\r\n` +
            '5\r\nhello\r\n0\r\nx-checksum: 5d41402a\r\n\r\n',
        )
      }
    })
  })
  await new Promise<void>((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve())
  })
  return {server, port: (server.address() as AddressInfo).port}
}

// Abuse that a public gateway meets: slow and oversized clients, path tricks, spoofed forwarding headers, attempts to
// reach what is not registered. Local backend (no server needed), real upstreams, real sockets; every wait bounded.
describe('svc proxy under abuse (local backend)', () => {
  const [backend] = testBackends(['local'])
  let registry: Registry
  let running: RunningProxy
  let trusting: RunningProxy
  const upstreams: TestUpstream[] = []
  const handles: RegistrationHandle[] = []
  const a = uniqueService('a')
  const b = uniqueService('b')
  const hints = uniqueService('hints')
  let raw: {server: Server; port: number}
  /** A listener no service names: nothing may ever connect to it through the proxy. */
  let canary: Server
  let canaryPort = 0
  let canaryConnections = 0

  beforeAll(async () => {
    registry = await openRegistry(backend!.uri)
    for (const [service, name] of [
      [a, 'A'],
      [b, 'B'],
    ] as const) {
      const u = await startUpstream(name)
      upstreams.push(u)
      handles.push(await registry.register({service, id: name, address: '127.0.0.1', port: u.port}))
    }

    raw = await startRawUpstream()
    handles.push(await registry.register({service: hints, id: 'hints-1', address: '127.0.0.1', port: raw.port}))
    canary = createServer((socket) => {
      canaryConnections++
      socket.destroy()
    })
    await new Promise<void>((resolve) => {
      canary.listen(0, '127.0.0.1', () => resolve())
    })
    canaryPort = (canary.address() as AddressInfo).port
    const options = {
      host: '127.0.0.1',
      port: 0,
      strategy: 'round-robin' as const,
      connectTimeoutMs: 1000,
      timeoutMs: 5000,
      hostRouting: true,
      limits: {
        maxHeaderBytes: 4096,
        maxUrlBytes: 1024,
        headersTimeoutMs: 600,
        bodyTimeoutMs: 600,
        idleTimeoutMs: 400,
      },
      log() {},
    }
    running = await runProxy(registry, options)
    trusting = await runProxy(registry, {...options, trustedProxy: parseTrustedProxies(['127.0.0.0/8'])})
    await eventually(async () => [a, b, hints].every((s) => running.proxy.table.services.get(s)?.available === 1), 5000)
    await eventually(
      async () => [a, b, hints].every((s) => trusting.proxy.table.services.get(s)?.available === 1),
      5000,
    )
  })

  afterAll(async () => {
    await running?.stop(1000)
    await trusting?.stop(1000)
    await Promise.allSettled(handles.map((h) => h.close()))
    await Promise.allSettled(upstreams.map((u) => u.kill()))
    raw?.server.close()
    canary?.close()
    await registry?.close()
  })

  it('cuts off slowloris clients at the headers timeout, however steadily they drip', async () => {
    const started = Date.now()
    const clients = await Promise.all(
      Array.from({length: 20}, () =>
        // a byte every 100 ms keeps the idle timer (400 ms) from ever firing: only the headers timeout can end it
        slowClient(running.address, `GET /${a}/ HTTP/1.1\r\nHost: x\r\n`, 'X-Slow: ' + 'a'.repeat(200), 100, 5000),
      ),
    )
    for (const c of clients) {
      expect(c.out).toMatch(/^HTTP\/1\.1 408 /)
      expect(c.closedAfterMs).toBeGreaterThanOrEqual(550)
      expect(c.closedAfterMs).toBeLessThan(2500)
    }

    expect(Date.now() - started).toBeLessThan(4000)
    // the proxy still serves everyone else
    expect((await echo(`http://${running.address}`, `/${a}/echo`, {})).status).toBe(200)
  })

  it('cuts off a client that stalls in the middle of a body, and closes idle connections', async () => {
    const stalled = await slowClient(
      running.address,
      `POST /${a}/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789`,
      '',
      1000,
      5000,
    )
    expect(stalled.out).toMatch(/^HTTP\/1\.1 408 /)
    expect(stalled.closedAfterMs).toBeLessThan(2500)

    const idle = await slowClient(running.address, '', '', 1000, 5000)
    expect(idle.out).toBe('')
    expect(idle.closedAfterMs).toBeGreaterThanOrEqual(350)
    expect(idle.closedAfterMs).toBeLessThan(2500)
  })

  it('answers 431 to an oversized head, 414 to an overlong target, and forwards 60 small fields whole', async () => {
    expect(
      await converse(running.address, `GET /${a}/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(5000)}\r\n\r\n`),
    ).toMatch(/^HTTP\/1\.1 431 /)
    const overlong = await converse(running.address, `GET /${a}/${'p'.repeat(1100)} HTTP/1.1\r\nHost: x\r\n\r\n`)
    expect(overlong).toMatch(/^HTTP\/1\.1 414 /)
    expect(overlong).toMatch(/connection: close/i)
    const many = Object.fromEntries(Array.from({length: 60}, (_, i) => [`x-many-${i}`, String(i)]))
    const echoed = await echo(`http://${running.address}`, `/${a}/echo`, many)
    expect(echoed.status).toBe(200)
    for (let i = 0; i < 60; i++) expect(echoed.headers[`x-many-${i}`]).toBe(String(i))
  })

  it('resolves dot segments before routing: traversal out of the named service gets 404', async () => {
    const base = `http://${running.address}`
    const status = async (path: string): Promise<string> =>
      (await converse(running.address, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)).slice(0, 12)
    for (const path of [
      `/${a}/../${b}/echo`,
      `/${a}/%2e%2e/${b}/echo`,
      `/${a}/.%2E/${b}/echo`,
      `/${a}/x/../../${b}/echo`,
      '/..',
      `/../${b}/echo`,
      `/%2e%2e/${b}/echo`,
    ])
      expect(await status(path), path).toBe('HTTP/1.1 404')
    expect(await status(`/${a}\\..\\${b}/echo`)).toBe('HTTP/1.1 400')
    // dot segments inside the service are resolved, and the upstream gets the clean path
    const inside = await echo(base, `/${b}/x/./../echo?q=/../`, {})
    expect(inside).toMatchObject({status: 200, url: '/echo?q=/../'})
    expect(upstreams[1]!.hits).toBeGreaterThan(0)
  })

  it('cannot be made to connect to an address no service names', async () => {
    const address = running.address
    const target = `127.0.0.1:${canaryPort}`
    const attempts = [
      `GET http://${target}/ HTTP/1.1\r\nHost: ${target}\r\nConnection: close\r\n\r\n`,
      `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`,
      `GET / HTTP/1.1\r\nHost: ${target}\r\nConnection: close\r\n\r\n`,
      `GET /${target}/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
      `GET /127.0.0.1/ HTTP/1.1\r\nHost: ${target}\r\nConnection: close\r\n\r\n`,
      `GET /nope/ HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`,
      `GET //${target}/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    ]
    for (const text of attempts) expect(await converse(address, text), text).toMatch(/^HTTP\/1\.1 4\d\d /)
    // the admin endpoints are not on the public listener
    for (const path of ['/routes', '/metrics', '/healthz'])
      expect(await converse(address, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)).toMatch(
        /^HTTP\/1\.1 404 /,
      )
    await sleep(100)
    expect(canaryConnections).toBe(0)
  })

  it("replaces a client's forwarding headers, and keeps a trusted proxy's", async () => {
    const spoof = {
      'X-Forwarded-For': '203.0.113.9',
      'X-Forwarded-Proto': 'https',
      'X-Forwarded-Host': 'admin.example',
      Forwarded: 'for=203.0.113.9',
      'X-Real-IP': '203.0.113.9',
      Connection: 'keep-alive, X-Secret-Hop',
      'X-Secret-Hop': 'h',
      'Proxy-Authorization': 'Basic eDp5',
    }
    const plain = await echo(`http://${running.address}`, `/${a}/echo`, spoof)
    expect(plain.headers).toMatchObject({
      'x-forwarded-for': '127.0.0.1',
      'x-forwarded-proto': 'http',
      'x-forwarded-host': running.address,
    })
    for (const name of ['forwarded', 'x-real-ip', 'x-secret-hop', 'proxy-authorization'])
      expect(plain.headers[name], name).toBeUndefined()

    const trusted = await echo(`http://${trusting.address}`, `/${a}/echo`, spoof)
    expect(trusted.headers).toMatchObject({
      'x-forwarded-for': '203.0.113.9, 127.0.0.1',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'admin.example',
      forwarded: 'for=203.0.113.9',
    })
    expect(trusted.headers['x-secret-hop']).toBeUndefined()
  })

  it('passes 1xx interim responses and trailers on, and keeps every field of a long head', async () => {
    const out = await converse(running.address, `GET /${hints}/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
    expect(out).toMatch(/^HTTP\/1\.1 103 Early Hints\r\nLink: <\/style\.css>; rel=preload\r\n\r\nHTTP\/1\.1 200 OK\r\n/)
    for (let i = 0; i < 40; i++) expect(out).toContain(`\r\nx-field-${i}: ${i}\r\n`)
    expect(out).toMatch(/\r\n5\r\nhello\r\n0\r\nx-checksum: 5d41402a\r\n\r\n$/)
    // an HTTP/1.0 client gets no interim response, and no chunks
    const old = await converse(running.address, `GET /${hints}/ HTTP/1.0\r\nHost: x\r\n\r\n`)
    expect(old).toMatch(/^HTTP\/1\.1 200 OK\r\n/)
    expect(old.endsWith('\r\n\r\nhello')).toBe(true)
  })
})
