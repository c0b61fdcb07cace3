import {mkdtempSync, readFileSync, renameSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {request} from 'undici'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {AccessLog} from '../../src/lib/proxy/access-log.js'
import type {AccessLogFormat} from '../../src/lib/proxy/access-format.js'
import {type ProxyEngineName, runProxy, type RunningProxy} from '../../src/lib/proxy/index.js'
import {openRegistry} from '../../src/lib/registry/index.js'
import type {RegistrationHandle, Registry} from '../../src/lib/registry/types.js'
import {testBackends, uniqueService} from '../helpers/backends.js'
import {eventually} from '../helpers/cli.js'
import {startUpstream, type TestUpstream} from '../helpers/upstream.js'

/** nginx's combined format with $upstreamAddr $upstream_response_time $request_time after it. */
const COMBINED =
  /^(\S+) - - \[(\d{2}\/\w{3}\/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] "(\S+) (\S+) (HTTP\/1\.[01])" (\d{3}) (\d+) "([^"]*)" "([^"]*)" (\S+) ([\d.]+|-) ([\d.]+)$/
const SVC = /^(\S+Z) (\S+) "(\S+) (\S+) (HTTP\/1\.[01])" (\d{3}) ([\d.]+)ms (\S+) (\S+) (\d+)B ([\d.]+ms|-)$/

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await request(url, {headers})
  return {status: res.statusCode, headers: res.headers, body: await res.body.text()}
}

// The access log formats, the admin listener's answers and the per-instance counters, on both engines.
describe.each(['llhttp', 'node-http'] as ProxyEngineName[])('svc proxy edge features on the %s engine', (engine) => {
  const [backend] = testBackends(['local'])
  const dir = mkdtempSync(path.join(tmpdir(), 'svc-edge-'))
  const service = uniqueService('edge')
  let registry: Registry
  let upstream: TestUpstream
  let handle: RegistrationHandle
  const proxies: RunningProxy[] = []

  /** A proxy whose access log goes to `file` in `format`. */
  const start = async (format: AccessLogFormat, file: string): Promise<{running: RunningProxy; log: AccessLog}> => {
    const log = new AccessLog({file, format})
    const running = await runProxy(registry, {
      host: '127.0.0.1',
      port: 0,
      strategy: 'round-robin',
      connectTimeoutMs: 1000,
      timeoutMs: 5000,
      admin: {host: '127.0.0.1', port: 0},
      accessLog: log,
      engine: {env: engine},
      log() {},
    })
    proxies.push(running)
    await eventually(async () => running.proxy.table.services.get(service)?.available === 1, 5000)
    return {running, log}
  }

  beforeAll(async () => {
    registry = await openRegistry(backend!.uri)
    upstream = await startUpstream('edge-1')
    handle = await registry.register({service, id: 'edge-1', address: '127.0.0.1', port: upstream.port})
  })

  afterAll(async () => {
    await Promise.allSettled(proxies.map((p) => p.stop(1000)))
    await handle?.close()
    await upstream?.kill()
    await registry?.close()
    rmSync(dir, {recursive: true, force: true})
  })

  it('writes the combined format with the upstream address and times, parsed back', async () => {
    const file = path.join(dir, `${engine}-combined.log`)
    const {running, log} = await start('combined', file)
    const base = `http://${running.address}`
    const ok = await get(`${base}/${service}/user?id=7`, {referer: 'http://x/"q"', 'user-agent': 'edge-test/1'})
    expect(ok.body).toBe("It's user 7.")
    expect((await get(`${base}/no-such/x`)).status).toBe(404)
    await log.close()
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n')
    expect(lines).toHaveLength(2)
    const [first, second] = lines.map((line) => COMBINED.exec(line))
    expect(first, lines[0]).not.toBeNull()
    const [, remote, , method, target, protocol, status, bytes, referer, agent, up, upTime, total] = first!
    expect({remote, method, target, protocol, status, referer, agent, up}).toEqual({
      remote: '127.0.0.1',
      method: 'GET',
      target: `/${service}/user?id=7`,
      protocol: 'HTTP/1.1',
      status: '200',
      referer: String.raw`http://x/\x22q\x22`,
      agent: 'edge-test/1',
      up: `127.0.0.1:${upstream.port}`,
    })
    expect(Number(bytes)).toBe(Buffer.byteLength("It's user 7."))
    expect(Number(upTime)).toBeGreaterThanOrEqual(0)
    expect(Number(total)).toBeGreaterThanOrEqual(Number(upTime))
    expect(second, lines[1]).not.toBeNull()
    expect(second![6]).toBe('404')
    // the proxy's own JSON answer counts as the body sent
    expect(Number(second![7])).toBeGreaterThan(0)
    expect(second!.slice(10, 12)).toEqual(['-', '-'])
  })

  it('writes JSON lines and the svc line, parsed back', async () => {
    const jsonFile = path.join(dir, `${engine}.json.log`)
    const svcFile = path.join(dir, `${engine}.svc.log`)
    const json = await start('json', jsonFile)
    const svc = await start('svc', svcFile)
    await get(`http://${json.running.address}/${service}/`, {'user-agent': 'edge-json'})
    await get(`http://${svc.running.address}/${service}/`)
    await Promise.all([json.log.close(), svc.log.close()])
    const record = JSON.parse(readFileSync(jsonFile, 'utf8').trim()) as Record<string, unknown>
    expect(record).toMatchObject({
      remote: '127.0.0.1',
      method: 'GET',
      target: `/${service}/`,
      protocol: 'HTTP/1.1',
      status: 200,
      bytes: Buffer.byteLength('This is edge-1.'),
      service,
      upstreamAddr: `127.0.0.1:${upstream.port}`,
      referer: null,
      userAgent: 'edge-json',
    })
    expect(new Date(record.time as string).getTime()).toBeGreaterThan(Date.now() - 60_000)
    expect(record.durationMs as number).toBeGreaterThanOrEqual(record.upstreamMs as number)
    const line = SVC.exec(readFileSync(svcFile, 'utf8').trim())
    expect(line).not.toBeNull()
    const [remote, method, target, protocol, status, , name, up, bytes, upTime] = line!.slice(2)
    expect({remote, method, target, protocol, status, name, up, bytes}).toEqual({
      remote: '127.0.0.1',
      method: 'GET',
      target: `/${service}/`,
      protocol: 'HTTP/1.1',
      status: '200',
      name: service,
      up: `127.0.0.1:${upstream.port}`,
      bytes: String(Buffer.byteLength('This is edge-1.')),
    })
    expect(upTime).toMatch(/^[\d.]+ms$/)
  })

  it('reopens the file after a rename (logrotate), losing no line', async () => {
    const file = path.join(dir, `${engine}-rotate.log`)
    const {running, log} = await start('svc', file)
    await get(`http://${running.address}/${service}/user?id=1`)
    log.flush()
    renameSync(file, `${file}.1`)
    await get(`http://${running.address}/${service}/user?id=2`)
    // the line is recorded as the proxy settles the request, which may come just after the client has its answer
    await eventually(async () => {
      log.flush()
      return readFileSync(`${file}.1`, 'utf8').includes('id=2')
    }, 2000)
    log.reopen()
    await get(`http://${running.address}/${service}/user?id=3`)
    await log.close()
    const rotated = readFileSync(`${file}.1`, 'utf8')
    const fresh = readFileSync(file, 'utf8')
    expect(rotated).toContain('id=1')
    expect(rotated).toContain('id=2')
    expect(fresh).toContain('id=3')
    expect(fresh).not.toContain('id=2')
  })

  it('admin: 405 with Allow for other methods, the route page on /, per-instance counters in /routes', async () => {
    const {running, log} = await start('svc', path.join(dir, `${engine}-admin.log`))
    const admin = `http://${running.adminAddress}`
    for (const [method, target] of [
      ['POST', '/metrics'],
      ['PUT', '/routes'],
      ['DELETE', '/'],
    ] as const) {
      const res = await request(`${admin}${target}`, {method})
      await res.body.dump()
      expect(res.statusCode, `${method} ${target}`).toBe(405)
      expect(res.headers.allow).toBe('GET, HEAD')
    }

    const page = await get(`${admin}/`)
    expect(page.status).toBe(200)
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8')
    expect(page.body).toContain("fetch('/routes'")
    expect(page.body).not.toMatch(/<script[^>]+src=|<link[^>]+href=/)
    for (let i = 0; i < 3; i++) await get(`http://${running.address}/${service}/`)
    const routes = JSON.parse((await get(`${admin}/routes`)).body) as Array<Record<string, unknown>>
    expect(routes).toEqual([
      expect.objectContaining({
        service,
        requests: 3,
        instances: [expect.objectContaining({id: 'edge-1', requests: 3, state: 'in-rotation'})],
      }),
    ])
    await log.close()
  })
})
