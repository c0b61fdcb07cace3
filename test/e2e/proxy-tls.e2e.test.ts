import {mkdtempSync, writeFileSync} from 'node:fs'
import {request as httpRequest} from 'node:http'
import {type ClientHttp2Session, connect as h2connect} from 'node:http2'
import {request as httpsRequest} from 'node:https'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {connect as tlsConnect} from 'node:tls'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {openRegistry} from '../../src/lib/registry/index.js'
import type {RegistrationHandle, Registry} from '../../src/lib/registry/types.js'
import {eventually, runCli, waitForExit} from '../helpers/cli.js'
import {type ProxyCli, startProxyCli} from '../helpers/proxy-cli.js'
import {certDir, makeCert, type TestCert} from '../helpers/tls-certs.js'
import {startUpstream, type TestUpstream} from '../helpers/upstream.js'

const backend = `local://${mkdtempSync(path.join(tmpdir(), 'svc-e2e-tls-'))}`
const env = {SVC_BACKEND: backend}

/** The serial of the certificate a TLS handshake with `servername` gets. */
async function servedSerial(address: string, servername: string | undefined, ca: Buffer[]): Promise<string> {
  const [host, port] = address.split(':')
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({host, port: Number(port), servername, ca, rejectUnauthorized: false}, () => {
      const serial = socket.getPeerCertificate().serialNumber
      socket.destroy()
      resolve(serial)
    })
    socket.once('error', reject)
    socket.setTimeout(5000, () => socket.destroy(new Error('no handshake within 5 s')))
  })
}

/** One HTTP/2 GET on `session`: status, body and the ALPN protocol the session runs. */
async function h2get(session: ClientHttp2Session, target: string): Promise<{status: number; body: string}> {
  return new Promise((resolve, reject) => {
    const req = session.request({':path': target})
    let status = 0
    let body = ''
    req.setTimeout(5000, () => req.close())
    req.on('response', (head) => {
      status = Number(head[':status'])
    })
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => {
      body += chunk
    })
    req.on('end', () => resolve({status, body}))
    req.on('error', reject)
    req.end()
  })
}

/** One HTTP/1.1 GET over TLS (no ALPN offered: the proxy falls back to HTTP/1.1). */
async function httpsGet(
  address: string,
  target: string,
  servername: string,
  ca: Buffer[],
): Promise<{status: number; body: string; protocol: string | false | null}> {
  const [host, port] = address.split(':')
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {host, port: Number(port), path: target, servername, ca, agent: false, timeout: 5000},
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          body += chunk
        })
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body,
            protocol: (res.socket as unknown as {alpnProtocol: string | false | null}).alpnProtocol,
          }),
        )
      },
    )
    req.on('error', reject)
    req.end()
  })
}

async function httpGet(address: string, target: string): Promise<{status: number; location?: string; body: string}> {
  const [host, port] = address.split(':')
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {host, port: Number(port), path: target, agent: false, timeout: 5000, headers: {host: `shop.test:${port}`}},
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          body += chunk
        })
        res.on('end', () => resolve({status: res.statusCode ?? 0, location: res.headers.location, body}))
      },
    )
    req.on('error', reject)
    req.end()
  })
}

async function stop(proxy: ProxyCli | undefined): Promise<void> {
  if (proxy === undefined) return
  proxy.child.kill('SIGTERM')
  await waitForExit(proxy.child, 10_000).catch(() => proxy.child.kill('SIGKILL'))
}

describe('svc proxy with TLS and HTTP/2 (the built binary)', () => {
  let registry: Registry
  let upstream: TestUpstream
  let handle: RegistrationHandle
  const dir = certDir()
  let a: TestCert
  let b: TestCert

  beforeAll(async () => {
    a = makeCert(dir, 'a', ['a.test', '*.a.test'])
    b = makeCert(dir, 'b', ['b.test'])
    registry = await openRegistry(backend)
    upstream = await startUpstream('tls')
    handle = await registry.register({service: 'shop', address: '127.0.0.1', port: upstream.port})
  })

  afterAll(async () => {
    await handle?.close()
    await registry?.close()
    await upstream?.kill()
  })

  it('picks the certificate by SNI, serves h2 (ALPN) and HTTP/1.1 on one port, and reloads certificates on SIGHUP without dropping a connection', async () => {
    const args = [
      '--tls-listen',
      '127.0.0.1:0',
      '--tls-cert',
      a.cert,
      '--tls-key',
      a.key,
      '--tls-cert',
      b.cert,
      '--tls-key',
      b.key,
    ]
    const proxy = await startProxyCli(args, env)
    let session: ClientHttp2Session | undefined
    try {
      // only --tls-listen given: TLS only, as fabio and Traefik serve the addresses they are given
      expect(proxy.plain).toBeUndefined()
      const tls = proxy.tls!
      const ca = [a.pem, b.pem]
      expect(await servedSerial(tls, 'b.test', ca)).toBe(b.serial)
      expect(await servedSerial(tls, 'x.a.test', ca)).toBe(a.serial)
      // no SNI, or a name no certificate holds: the first pair, the default
      expect(await servedSerial(tls, undefined, ca)).toBe(a.serial)
      expect(await servedSerial(tls, 'other.test', ca)).toBe(a.serial)

      session = h2connect(`https://${tls}`, {ca, servername: 'b.test'})
      expect(await h2get(session, '/shop/user?id=7')).toEqual({status: 200, body: "It's user 7."})
      expect((session.socket as unknown as {alpnProtocol: string}).alpnProtocol).toBe('h2')
      expect(await httpsGet(tls, '/shop/user?id=8', 'a.test', ca)).toEqual({
        status: 200,
        body: "It's user 8.",
        protocol: false,
      })

      // a new certificate for a.test, then SIGHUP: new handshakes get it, the open h2 connection goes on
      const renewed = makeCert(dir, 'a', ['a.test', '*.a.test'])
      proxy.child.kill('SIGHUP')
      await eventually(async () => proxy.stderr().includes('TLS certificates reloaded'), 5000)
      expect(await servedSerial(tls, 'a.test', [renewed.pem])).toBe(renewed.serial)
      expect(await h2get(session, '/shop/user?id=9')).toEqual({status: 200, body: "It's user 9."})

      // a broken file on reload: one line, and the certificates in use stay
      writeFileSync(b.key, 'not a key\n')
      proxy.child.kill('SIGHUP')
      await eventually(async () => proxy.stderr().includes('TLS reload failed'), 5000)
      expect(proxy.stderr().match(/TLS reload failed.*\n/g)).toHaveLength(1)
      expect(await servedSerial(tls, 'b.test', ca)).toBe(b.serial)
      expect(await h2get(session, '/shop/user?id=10')).toEqual({status: 200, body: "It's user 10."})
    } finally {
      session?.destroy()
      await stop(proxy)
    }
  })

  it('redirects plain HTTP to https with 308 under --redirect-https', async () => {
    const ok = makeCert(dir, 'r', ['shop.test'])
    const proxy = await startProxyCli(
      [
        '--listen',
        '127.0.0.1:0',
        '--redirect-https',
        '--tls-listen',
        '127.0.0.1:0',
        '--tls-cert',
        ok.cert,
        '--tls-key',
        ok.key,
      ],
      env,
    )
    try {
      const tlsPort = proxy.tls!.split(':')[1]
      expect(await httpGet(proxy.plain!, '/shop/user?id=1')).toMatchObject({
        status: 308,
        location: `https://shop.test:${tlsPort}/shop/user?id=1`,
      })
    } finally {
      await stop(proxy)
    }
  })

  it.each(['llhttp', 'node-http'])(
    'serves h2c with prior knowledge beside HTTP/1.1 on the plain listener, and HTTP/1.1 over TLS (%s engine)',
    async (engine) => {
      const ok = makeCert(dir, `e-${engine}`, ['shop.test'])
      const proxy = await startProxyCli(
        ['--listen', '127.0.0.1:0', '--h2c', '--tls-listen', '127.0.0.1:0', '--tls-cert', ok.cert, '--tls-key', ok.key],
        {...env, SVC_PROXY_ENGINE: engine},
      )
      const session = h2connect(`http://${proxy.plain!}`)
      try {
        expect(await h2get(session, '/shop/user?id=2')).toEqual({status: 200, body: "It's user 2."})
        expect(await httpGet(proxy.plain!, '/shop/user?id=3')).toMatchObject({status: 200, body: "It's user 3."})
        expect(await httpsGet(proxy.tls!, '/shop/user?id=4', 'shop.test', [ok.pem])).toMatchObject({
          status: 200,
          body: "It's user 4.",
        })
        const echoed = await h2get(session, '/shop/echo')
        expect(JSON.parse(echoed.body)).toMatchObject({headers: expect.objectContaining({'x-forwarded-proto': 'http'})})
        // HTTP/1.1 handed over by the TLS listener says https upstream
        const secure = await httpsGet(proxy.tls!, '/shop/echo', 'shop.test', [ok.pem])
        expect(JSON.parse(secure.body)).toMatchObject({
          headers: expect.objectContaining({'x-forwarded-proto': 'https'}),
        })
      } finally {
        session.destroy()
        await stop(proxy)
      }
    },
  )

  it('refuses a bad certificate or key at start with one line and exit status 2', async () => {
    const broken = path.join(dir, 'broken.pem')
    writeFileSync(broken, 'nothing\n')
    const result = await runCli(['proxy', '--tls-listen', '127.0.0.1:0', '--tls-cert', a.cert, '--tls-key', broken], {
      env,
    })
    expect(result.code).toBe(2)
    expect(result.stderr.trim().split('\n')).toHaveLength(1)
    expect(result.stderr).toContain(`${broken} holds no PEM private key`)
  })
})
