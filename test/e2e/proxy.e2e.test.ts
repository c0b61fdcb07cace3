import {existsSync, mkdtempSync, readFileSync, renameSync} from 'node:fs'
import {connect} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

import {Pool, request} from 'undici'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {MergedRouteView} from '../../src/lib/proxy/admin/merge-routes.js'
import {openRegistry} from '../../src/lib/registry/index.js'
import type {RegistrationHandle, Registry} from '../../src/lib/registry/types.js'
import {eventually, runCli, spawnCli, waitForExit, waitForOutput} from '../helpers/cli.js'
import {startUpstream, type TestUpstream} from '../helpers/upstream.js'

const backend = `local://${mkdtempSync(path.join(tmpdir(), 'svc-e2e-proxy-'))}`
const env = {SVC_BACKEND: backend}

async function get(url: string): Promise<{status: number; body: string}> {
  const res = await request(url)
  return {status: res.statusCode, body: await res.body.text()}
}

/** Starts `svc proxy` on free ports; resolves with the child and its public and admin addresses. */
async function startProxy(...args: string[]) {
  const child = spawnCli(['proxy', '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', ...args], env)
  let stderr = ''
  let stdout = ''
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString()
  })
  // the admin line comes second, maybe in the same chunk as the first; a proxy that never says so is stopped
  const admin = await waitForOutput(child, /^svc proxy admin on /).catch((error: unknown) => {
    child.kill('SIGKILL')
    throw error
  })
  return {
    child,
    address: /^svc proxy listening on http:\/\/(\S+)/m.exec(stdout)![1]!,
    admin: /http:\/\/(\S+)/.exec(admin)![1]!,
    stderr: () => stderr,
  }
}

describe('svc proxy (the built binary)', () => {
  let registry: Registry
  let upstream: TestUpstream
  let handle: RegistrationHandle

  beforeAll(async () => {
    registry = await openRegistry(backend)
    upstream = await startUpstream('e2e')
    handle = await registry.register({service: 'shop', address: '127.0.0.1', port: upstream.port})
  })

  afterAll(async () => {
    await handle?.close()
    await registry?.close()
    await upstream?.kill()
  })

  it('proxies, serves /routes, /metrics and /healthz on the admin listener only, logs access, and drains on SIGTERM', async () => {
    const proxy = await startProxy('--access-log')
    try {
      expect(await get(`http://${proxy.address}/shop/user?id=7`)).toEqual({status: 200, body: "It's user 7."})

      const routes = await get(`http://${proxy.admin}/routes`)
      expect(routes.status).toBe(200)
      expect(JSON.parse(routes.body)).toEqual([
        expect.objectContaining({
          service: 'shop',
          available: 1,
          instances: [expect.objectContaining({address: `127.0.0.1:${upstream.port}`, state: 'in-rotation'})],
        }),
      ])
      const metrics = await get(`http://${proxy.admin}/metrics`)
      expect(metrics.body).toContain('svc_proxy_requests_total{service="shop",code="200"} 1')
      expect(metrics.body).toContain('svc_proxy_request_duration_seconds_bucket{le="+Inf",service="shop"} 1')
      expect(metrics.body).toContain('svc_proxy_instances{service="shop",state="in-rotation"} 1')
      expect(await get(`http://${proxy.admin}/healthz`)).toEqual({status: 200, body: 'ok\n'})
      // the public listener knows nothing of the admin endpoints
      expect((await get(`http://${proxy.address}/routes`)).status).toBe(404)
      // access-log lines go out in batches (every 100 ms)
      const logged = /"GET \/shop\/user\?id=7 HTTP\/1\.1" 200 [\d.]+ms shop 127\.0\.0\.1:\d+/
      await eventually(async () => logged.test(proxy.stderr()), 2000)

      // SIGTERM while a slow request is in flight: it finishes, then the process exits 0
      const slow = get(`http://${proxy.address}/shop/slow?ms=800`)
      await sleep(200)
      proxy.child.kill('SIGTERM')
      expect(await slow).toEqual({status: 200, body: 'slow'})
      expect(await waitForExit(proxy.child, 10_000)).toBe(0)
      expect(proxy.stderr()).toContain('svc: draining (1 in flight)')
      expect(proxy.stderr()).toContain('svc: stopped')
      await expect(get(`http://${proxy.address}/shop/`)).rejects.toThrow()
    } finally {
      proxy.child.kill('SIGKILL')
    }
  })

  it('appends the access log to a file and reopens it on SIGUSR1 after logrotate renamed it', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'svc-e2e-log-')), 'access.log')
    const proxy = await startProxy('--access-log', file, '--access-log-format', 'json')
    try {
      await get(`http://${proxy.address}/shop/user?id=1`)
      // lines are written in batches, at most 100 ms apart
      await eventually(async () => readFileSync(file, 'utf8').includes('id=1'), 5000)
      renameSync(file, `${file}.1`)
      proxy.child.kill('SIGUSR1')
      await eventually(async () => existsSync(file), 5000)
      await get(`http://${proxy.address}/shop/user?id=2`)
      await eventually(async () => readFileSync(file, 'utf8').includes('id=2'), 5000)
      const record = JSON.parse(readFileSync(file, 'utf8').trim()) as Record<string, unknown>
      expect(record).toMatchObject({target: '/shop/user?id=2', status: 200, service: 'shop'})
      expect(readFileSync(`${file}.1`, 'utf8')).not.toContain('id=2')
      proxy.child.kill('SIGTERM')
      expect(await waitForExit(proxy.child, 10_000)).toBe(0)
    } finally {
      proxy.child.kill('SIGKILL')
    }
  })

  it('cuts requests still running at the drain deadline', async () => {
    const proxy = await startProxy('--drain-timeout', '300ms')
    try {
      const slow = get(`http://${proxy.address}/shop/slow?ms=3000`).catch((error: Error) => error)
      await sleep(200)
      proxy.child.kill('SIGTERM')
      expect(await waitForExit(proxy.child, 10_000)).toBe(0)
      expect(await slow).toBeInstanceOf(Error)
      expect(proxy.stderr()).toContain('svc: stopped; 1 requests cut at the drain deadline')
    } finally {
      proxy.child.kill('SIGKILL')
    }
  })

  it('cuts a client that is slower than --header-timeout with 408', async () => {
    const proxy = await startProxy('--header-timeout', '300ms', '--idle-timeout', '5s')
    try {
      const [host, port] = proxy.address.split(':')
      const started = Date.now()
      const reply = await new Promise<string>((resolve, reject) => {
        const socket = connect(Number(port), host!, () => socket.write('GET /shop/ HTTP/1.1\r\nHost: x\r\n'))
        let out = ''
        socket.setTimeout(5000, () => socket.destroy(new Error('not cut off within 5 s')))
        socket.on('data', (d: Buffer) => {
          out += d.toString()
        })
        socket.on('close', () => resolve(out))
        socket.on('error', reject)
      })
      expect(reply).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/)
      expect(Date.now() - started).toBeLessThan(3000)
    } finally {
      proxy.child.kill('SIGKILL')
    }
  })

  it('answers 504 when the upstream is slower than --timeout', async () => {
    const proxy = await startProxy('--timeout', '300ms')
    try {
      const res = await get(`http://${proxy.address}/shop/slow?ms=2000`)
      expect(res.status).toBe(504)
      expect(JSON.parse(res.body)).toMatchObject({service: 'shop', error: expect.stringMatching(/^upstream timed out/)})
    } finally {
      proxy.child.kill('SIGKILL')
    }
  })

  it('runs --workers 2, each worker following the registry, with no secret on their command lines', async () => {
    // a token the local backend ignores: it stands for any secret given as a flag
    const proxy = await startProxy('--workers', '2', '--token', 'not-on-any-command-line', '-b', backend)
    try {
      expect(proxy.stderr()).toBe('')
      const workers = readFileSync(`/proc/${proxy.child.pid}/task/${proxy.child.pid}/children`, 'utf8')
        .trim()
        .split(/\s+/)
        .filter(Boolean)
      expect(workers).toHaveLength(2)
      for (const pid of workers) {
        const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
        expect(argv).toContain('--workers')
        expect(argv.join(' ')).not.toMatch(/not-on-any-command-line|--token|-b /)
      }

      for (let i = 0; i < 20; i++)
        expect(await get(`http://${proxy.address}/shop/`)).toEqual({status: 200, body: 'This is e2e.'})
      expect((await get(`http://${proxy.admin}/healthz`)).status).toBe(200)
      proxy.child.kill('SIGTERM')
      expect(await waitForExit(proxy.child, 15_000)).toBe(0)
      expect(proxy.stderr()).toContain('svc: stopped')
    } finally {
      proxy.child.kill('SIGKILL')
    }
  })

  it('answers the admin endpoints for the whole proxy under --workers 2, through a worker dying and coming back', async () => {
    const proxy = await startProxy('--workers', '2')
    const pool = new Pool(`http://${proxy.address}`, {connections: 8})
    try {
      // 8 connections at once: node:cluster hands them to the workers in turn, so both serve a share
      const statuses = await Promise.all(
        Array.from({length: 200}, async () => {
          const res = await pool.request({path: '/shop/', method: 'GET'})
          await res.body.dump()
          return res.statusCode
        }),
      )
      expect(statuses.filter((s) => s === 200)).toHaveLength(200)

      const metrics = (await get(`http://${proxy.admin}/metrics`)).body
      expect(metrics).toContain('svc_proxy_requests_total{service="shop",code="200"} 200')
      expect(metrics).toContain('svc_proxy_request_duration_seconds_count{service="shop"} 200')
      expect(metrics).toContain('svc_proxy_instances{service="shop",state="in-rotation"} 1')
      expect(metrics).toContain('svc_proxy_workers{state="up"} 2')
      const routes = JSON.parse((await get(`http://${proxy.admin}/routes`)).body) as MergedRouteView[]
      expect(routes).toEqual([
        expect.objectContaining({
          service: 'shop',
          available: 1,
          requests: 200,
          instances: [expect.objectContaining({state: 'in-rotation', requests: 200, ejectedIn: 0, workers: 2})],
        }),
      ])
      expect(await get(`http://${proxy.admin}/healthz`)).toEqual({status: 200, body: 'ok\n'})
      // the route page is the primary's too
      expect((await get(`http://${proxy.admin}/`)).body).toContain('<title>svc proxy routes</title>')

      // a worker killed: /healthz says so until the primary's new one is ready; the admin keeps answering
      const [first] = readFileSync(`/proc/${proxy.child.pid}/task/${proxy.child.pid}/children`, 'utf8')
        .trim()
        .split(/\s+/)
      process.kill(Number(first), 'SIGKILL')
      expect(
        await eventually(async () => {
          const health = await get(`http://${proxy.admin}/healthz`)
          return health.status === 503 && health
        }, 5000),
      ).toEqual({status: 503, body: '1 of 2 workers up\n'})
      await eventually(async () => (await get(`http://${proxy.admin}/healthz`)).status === 200, 20_000)
      expect((await get(`http://${proxy.admin}/metrics`)).body).toContain('svc_proxy_workers{state="up"} 2')
      const after = JSON.parse((await get(`http://${proxy.admin}/routes`)).body) as MergedRouteView[]
      expect(after[0]?.instances[0]).toMatchObject({state: 'in-rotation', workers: 2})
      expect(proxy.stderr()).toMatch(/worker \d exited \(SIGKILL\); starting a new one/)

      proxy.child.kill('SIGTERM')
      expect(await waitForExit(proxy.child, 15_000)).toBe(0)
    } finally {
      await pool.close()
      proxy.child.kill('SIGKILL')
    }
  })

  it('answers a bad flag with one line naming the fix and a non-zero status', async () => {
    for (const [args, pattern] of [
      [['--route', 'nope'], /invalid --route "nope": write it as PREFIX=SERVICE/],
      [['--listen', '127.0.0.1:99999'], /invalid --listen address "127\.0\.0\.1:99999"/],
      [['--strategy', 'fastest'], /--strategy=fastest to be one of: round-robin, random, least-conn, hash/],
      [['--hash-key', 'body:x'], /invalid --hash-key "body:x": use header:NAME, cookie:NAME or ip/],
      [['--trusted-proxy', '10.0.0.0/99'], /invalid trusted proxy "10\.0\.0\.0\/99".*CIDR block/],
      [['--max-header-size', '10'], /Expected an integer greater than or equal to 1024/],
      [['--header-timeout', 'soon'], /duration/],
    ] as const) {
      const result = await runCli(['proxy', ...args], {env})
      expect(result.code, args.join(' ')).not.toBe(0)
      expect(result.stdout).toBe('')
      const lines = result.stderr.trim().split('\n')
      expect(lines, result.stderr).toHaveLength(1)
      expect(lines[0]).toMatch(/^Error: /)
      expect(lines[0]).toMatch(pattern)
    }
  })

  it('fails fast, in one line, when the registry cannot be reached at start', async () => {
    const started = Date.now()
    const result = await runCli(['proxy', '--listen', '127.0.0.1:0', '-b', 'etcd://127.0.0.1:1'], {env})
    expect(result.code).toBe(1)
    expect(Date.now() - started).toBeLessThan(10_000)
    expect(result.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^Error: cannot reach etcd at 127\.0\.0\.1:1 .*: check that the servers run/),
    ])
  })

  it('names the fix when the listen address is taken', async () => {
    const result = await runCli(['proxy', '--listen', `127.0.0.1:${upstream.port}`], {env})
    expect(result.code).not.toBe(0)
    expect(result.stderr.trim()).toBe(
      `Error: cannot listen on 127.0.0.1:${upstream.port}: the address is already in use: stop the process listening there or pick another port, e.g. --listen 127.0.0.1:${upstream.port + 1}`,
    )
  })
})
