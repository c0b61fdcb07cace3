import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import * as grpc from '@grpc/grpc-js'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {openRegistry} from '../../src/lib/registry/index.js'
import type {RegistrationHandle, Registry} from '../../src/lib/registry/types.js'
import {eventually, waitForExit} from '../helpers/cli.js'
import {
  ECHO_SERVICE,
  type EchoClient,
  echoClient,
  type EchoServer,
  type Msg,
  startEchoServer,
  unary,
} from '../helpers/grpc-echo.js'
import {type ProxyCli, startProxyCli} from '../helpers/proxy-cli.js'
import {certDir, makeCert} from '../helpers/tls-certs.js'

const backend = `local://${mkdtempSync(path.join(tmpdir(), 'svc-e2e-grpc-'))}`
const env = {SVC_BACKEND: backend}

/** A server-streaming call's messages and final status, with a hook on each message. */
async function readStream(
  call: grpc.ClientReadableStream<Msg>,
  onMessage: (msg: Msg, n: number) => void = () => {},
): Promise<{messages: Msg[]; code: number}> {
  const messages: Msg[] = []
  return new Promise((resolve) => {
    call.on('data', (msg: Msg) => {
      messages.push(msg)
      onMessage(msg, messages.length)
    })
    call.on('error', () => {})
    call.on('status', (status: grpc.StatusObject) => resolve({messages, code: status.code}))
  })
}

/** A raw unary call to any method path (the Echo client knows only its own). */
async function rawCall(client: grpc.Client, method: string): Promise<number> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      method,
      (x: Buffer) => x,
      (x: Buffer) => x,
      Buffer.alloc(0),
      new grpc.Metadata(),
      {deadline: Date.now() + 5000},
      (error) => resolve(error?.code ?? 0),
    )
  })
}

describe('svc proxy forwarding gRPC (the built binary, real grpc-js servers and clients)', () => {
  let registry: Registry
  const servers: EchoServer[] = []
  const handles = new Map<string, RegistrationHandle>()
  let proxy: ProxyCli
  let client: EchoClient
  const cert = makeCert(certDir(), 'grpc', ['grpc.test'])

  beforeAll(async () => {
    registry = await openRegistry(backend)
    for (const name of ['one', 'two', 'three']) {
      const server = await startEchoServer(name)
      servers.push(server)
      const handle = await registry.register({
        service: ECHO_SERVICE,
        id: name,
        address: '127.0.0.1',
        port: server.port,
        meta: {protocol: 'grpc'},
      })
      handles.set(name, handle)
    }

    proxy = await startProxyCli(
      [
        '--listen',
        '127.0.0.1:0',
        '--h2c',
        '--tls-listen',
        '127.0.0.1:0',
        '--tls-cert',
        cert.cert,
        '--tls-key',
        cert.key,
        '--route',
        '/svctest.Gone=gone',
      ],
      env,
    )
    client = echoClient(proxy.plain!)
  })

  afterAll(async () => {
    client?.close()
    if (proxy) {
      proxy.child.kill('SIGTERM')
      await waitForExit(proxy.child, 10_000).catch(() => proxy.child.kill('SIGKILL'))
    }

    for (const handle of handles.values()) await handle.close().catch(() => {})
    await registry?.close()
    for (const server of servers) await server.stop(true)
  })

  it('answers unary calls over h2c and over TLS (ALPN h2), spread over the instances', async () => {
    const seen = new Set<string>()
    for (let i = 0; i < 6; i++) {
      const reply = (await unary(client, {text: `hi ${i}`})) as Msg
      expect(reply.text).toBe(`hi ${i}`)
      seen.add(reply.server!)
    }

    expect([...seen].sort()).toEqual(['one', 'three', 'two'])
    const secure = echoClient(proxy.tls!, {ca: cert.pem, servername: 'grpc.test'})
    try {
      expect(await unary(secure, {text: 'over tls'})).toMatchObject({text: 'over tls'})
    } finally {
      secure.close()
    }
  })

  it('streams server-side and both ways, trailers (grpc-status) intact', async () => {
    const streamed = await readStream(client.serverStream({text: 's', count: 5, delayMs: 10}))
    expect(streamed.code).toBe(grpc.status.OK)
    expect(streamed.messages.map((m) => m.text)).toEqual(['s#0', 's#1', 's#2', 's#3', 's#4'])

    const call = client.bidi()
    const replies: string[] = []
    const ended = new Promise<number>((resolve) => {
      call.on('status', (status: grpc.StatusObject) => resolve(status.code))
    })
    call.on('error', () => {})
    call.on('data', (msg: Msg) => {
      replies.push(msg.text!)
      // each message goes out only after the previous one's echo came back: no buffering on the way
      if (replies.length < 3) call.write({text: `b${replies.length}`})
      else call.end()
    })
    call.write({text: 'b0'})
    expect(await ended).toBe(grpc.status.OK)
    expect(replies).toEqual(['b0', 'b1', 'b2'])
  })

  it('honours grpc-timeout, and answers gRPC errors for a service with no instance or no route', async () => {
    const started = Date.now()
    expect(await unary(client, {text: 'slow', delayMs: 3000}, 300)).toMatchObject({
      code: grpc.status.DEADLINE_EXCEEDED,
    })
    expect(Date.now() - started).toBeLessThan(2000)
    expect(await rawCall(client, '/svctest.Gone/Unary')).toBe(grpc.status.UNAVAILABLE)
    expect(await rawCall(client, '/')).toBe(grpc.status.UNIMPLEMENTED)
  })

  it('finishes a stream whose instance leaves the registry, fails one whose instance dies, and sends new calls elsewhere', async () => {
    // a stream in flight on an instance that is deregistered: it finishes there, new calls avoid it
    let leaving: string | undefined
    let deregistered: Promise<void> | undefined
    const streamed = readStream(client.serverStream({text: 'l', count: 10, delayMs: 60}), (msg, n) => {
      if (n !== 1) return
      leaving = msg.server!
      deregistered = handles.get(leaving)!.close()
    })
    await eventually(async () => deregistered !== undefined, 5000)
    await deregistered
    handles.delete(leaving!)
    await eventually(async () => {
      const replies = await Promise.all([0, 1, 2, 3].map(async () => (await unary(client, {text: 'x'})) as Msg))
      return replies.every((r) => r.server !== leaving)
    }, 5000)
    const result = await streamed
    expect(result.code).toBe(grpc.status.OK)
    expect(result.messages).toHaveLength(10)
    expect(new Set(result.messages.map((m) => m.server))).toEqual(new Set([leaving]))

    // a stream on an instance that dies mid-stream: it ends with an error status, promptly
    let dying: EchoServer | undefined
    let stopped: Promise<void> | undefined
    const cut = await readStream(client.serverStream({text: 'd', count: 100, delayMs: 50}), (msg, n) => {
      if (n === 1) {
        dying = servers.find((s) => s.name === msg.server)
        stopped = dying!.stop(true)
      }
    })
    await stopped
    expect(cut.code).not.toBe(grpc.status.OK)
    expect(cut.messages.length).toBeLessThan(100)
    // the dead instance is still registered: calls to it fail to connect and are sent to the last one
    for (let i = 0; i < 4; i++) {
      const reply = (await unary(client, {text: 'after'})) as Msg
      expect(reply.text).toBe('after')
      expect(reply.server).not.toBe(dying!.name)
      expect(reply.server).not.toBe(leaving)
    }
  })
})
