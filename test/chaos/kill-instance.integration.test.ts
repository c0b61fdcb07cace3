import {type ChildProcess, spawn} from 'node:child_process'
import http from 'node:http'
import {mkdtempSync, rmSync} from 'node:fs'
import type {AddressInfo} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {request} from 'undici'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {KillInstanceReport} from '../../src/lib/chaos/kill-instance.js'
import {isAlive} from '../../src/lib/cluster/process.js'
import {allocatePorts} from '../../src/lib/cluster/ports.js'
import {openRegistry} from '../../src/lib/registry/index.js'
import type {Registry} from '../../src/lib/registry/types.js'
import {eventually, runCli, spawnCli, waitForOutput} from '../helpers/cli.js'
import {acquireDockerLock, docker, TestContainers} from '../helpers/docker.js'
import {stopProcess} from '../helpers/drills.js'

const root = mkdtempSync(path.join(tmpdir(), 'svc-chaos-inst-'))
const env = {SVC_HOME: path.join(root, 'home')}
const children: ChildProcess[] = []

/** A separate node process serving HTTP on 127.0.0.1:port (the drill stops it, so it cannot live in this worker). */
function server(port: number): ChildProcess {
  const child = spawn(
    process.execPath,
    ['-e', `require('node:http').createServer((q, s) => s.end('ok')).listen(${port}, '127.0.0.1')`],
    {stdio: 'ignore'},
  )
  children.push(child)
  return child
}

/**
 * A stand-in for `svc proxy` (built elsewhere): forwards each GET to the next of `ports` in turn and answers 502
 * when that upstream fails, without retrying, so requests routed to a stopped instance fail.
 */
function standInProxy(ports: number[]): Promise<http.Server> {
  let next = 0
  const proxy = http.createServer((req, res) => {
    const port = ports[next++ % ports.length]
    const upstream = http.get({host: '127.0.0.1', port, path: req.url, agent: false, timeout: 1000}, (answer) => {
      res.writeHead(answer.statusCode ?? 502)
      answer.pipe(res)
    })
    upstream.on('timeout', () => upstream.destroy())
    upstream.on('error', () => {
      res.writeHead(502)
      res.end()
    })
  })
  return new Promise((resolve) => {
    proxy.listen(0, '127.0.0.1', () => resolve(proxy))
  })
}

const running = async (id: string): Promise<string> => docker(['inspect', '--format', '{{.State.Running}}', id])

afterAll(async () => {
  for (const child of children) await stopProcess(child)
  rmSync(root, {recursive: true, force: true})
}, 60_000)

describe('svc chaos kill-instance on plain processes', () => {
  const backend = `local://${path.join(root, 'registry')}`
  let registry: Registry

  beforeAll(async () => {
    registry = await openRegistry(backend)
  })

  afterAll(async () => {
    await registry?.close()
  })

  /** Two node servers on free ports, each registered as `service` by `svc register` with an HTTP check. */
  async function twoInstances(
    service: string,
  ): Promise<{ports: number[]; servers: ChildProcess[]; registrations: ChildProcess[]}> {
    const ports = await allocatePorts(2)
    const servers = ports.map((p) => server(p))
    const registrations = ports.map((p) => {
      const args = ['register', service, '--port', String(p), '--address', '127.0.0.1']
      const child = spawnCli([...args, '--check-http', '/', '--check-interval', '500ms', '-b', backend], env)
      children.push(child)
      return child
    })
    await Promise.all(registrations.map((r) => waitForOutput(r, /^registered /, 20_000)))
    await eventually(
      async () => (await registry.listInstances(service)).filter((i) => i.health === 'passing').length === 2,
      10_000,
    )
    return {ports, servers, registrations}
  }

  async function drill(service: string, proxyUrl: string): Promise<{report: KillInstanceReport; stderr: string}> {
    const load = ['--proxy', proxyUrl, '--rate', '20', '--max-requests', '400']
    const result = await runCli(['chaos', 'kill-instance', service, '-b', backend, '--yes', '--json', ...load], {
      env,
      timeoutMs: 60_000,
    })
    expect(result.code, result.stderr).toBe(0)
    return {report: JSON.parse(result.stdout) as KillInstanceReport, stderr: result.stderr}
  }

  it('stops the process behind one instance, sees it leave, and counts failed requests through a proxy', async () => {
    const {ports, servers, registrations} = await twoInstances('web')
    const proxy = await standInProxy(ports)
    try {
      const {report, stderr} = await drill('web', `http://127.0.0.1:${(proxy.address() as AddressInfo).port}/`)
      expect(stderr).toMatch(/will stop process \d+ \(node: .*\), behind web:127\.0\.0\.1:\d+/)
      expect(report.ok, report.problems.join('; ')).toBe(true)
      expect(report.instances).toHaveLength(1)
      const [victim] = report.instances
      const index = ports.indexOf(victim!.port)
      expect(victim!.target).toMatchObject({kind: 'process', pid: servers[index]!.pid})
      expect(victim!.how).toBe('unhealthy')
      expect(victim!.goneMs).toBeLessThan(5000)
      // only the server behind that instance was stopped: the other server and both registrations still run
      expect(isAlive(servers[index]!.pid!)).toBe(false)
      expect(isAlive(servers[1 - index]!.pid!)).toBe(true)
      for (const r of registrations) expect(isAlive(r.pid!)).toBe(true)
      // the bounded load saw the failures through the stand-in, which neither retries nor ejects
      expect(report.load!.sent).toBeGreaterThan(20)
      expect(report.load!.sent).toBeLessThanOrEqual(400)
      expect(report.load!.failed).toBeGreaterThan(0)
      expect(report.load!.failed).toBeLessThan(report.load!.sent)
      const instances = await registry.listInstances('web')
      expect(instances.find((i) => i.port === victim!.port)?.health).toBe('critical')
    } finally {
      proxy.close()
      for (const r of registrations) await stopProcess(r)
    }
  })

  it('through a real svc proxy, no request fails while an instance is killed', async () => {
    const service = `gw-${Date.now().toString(36)}`
    const {registrations} = await twoInstances(service)
    const proxy = spawnCli(['proxy', '--listen', '127.0.0.1:0', '-b', backend], env)
    children.push(proxy)
    try {
      const listening = await waitForOutput(proxy, /^svc proxy listening on http:\/\/(\S+)/m, 20_000)
      const address = /http:\/\/(\S+)/.exec(listening)![1]!
      await eventually(async () => (await request(`http://${address}/${service}/`)).statusCode === 200, 10_000)
      const {report} = await drill(service, `http://${address}/${service}/`)
      expect(report.ok, report.problems.join('; ')).toBe(true)
      expect(report.instances).toHaveLength(1)
      expect(report.load!.sent).toBeGreaterThan(20)
      // the proxy retries a refused connection on the other instance, then drops the critical one
      expect(report.load!.failed).toBe(0)
    } finally {
      await stopProcess(proxy)
      for (const r of registrations) await stopProcess(r)
    }
  })

  it('refuses an instance on another machine and stops nothing', async () => {
    const far = spawnCli(['register', 'far', '--port', '80', '--address', '192.0.2.10', '-b', backend], env)
    children.push(far)
    await waitForOutput(far, /^registered /, 20_000)
    const result = await runCli(['chaos', 'kill-instance', 'far', '-b', backend, '--yes'], {env})
    expect(result.code).toBe(2)
    expect(result.stderr.trim()).toBe(
      'Error: instance far:192.0.2.10:80 at 192.0.2.10:80 is not on this machine: svc chaos stops only local containers and processes: run it on the machine that runs the instance',
    )
    await stopProcess(far)
  })
})

describe('svc chaos kill-instance on containers registered by svc agent', () => {
  const containers = new TestContainers('svcchaos')
  const backend = `local://${path.join(root, 'agent-registry')}`
  let agent: ChildProcess | undefined
  let registry: Registry
  let releaseDocker: (() => void) | undefined

  beforeAll(async () => {
    // no daemon restart of another test file while the agent's containers run
    releaseDocker = await acquireDockerLock()
    registry = await openRegistry(backend)
    agent = spawnCli(['agent', '-b', backend, '--hostname', 'svc-chaos-test', '--json'], env)
    children.push(agent)
    await waitForOutput(agent, /"type":"docker","state":"connected"/, 30_000)
  }, 240_000)

  afterAll(async () => {
    await stopProcess(agent)
    await containers.cleanup()
    await registry?.close()
    releaseDocker?.()
  }, 60_000)

  it('stops the container behind an instance and measures until the agent deregisters it', async () => {
    const service = `chaosweb-${Date.now().toString(36)}`
    const one = await containers.run({name: 'one', env: {SERVICE_NAME: service}})
    const two = await containers.run({name: 'two', env: {SERVICE_NAME: service}})
    await eventually(async () => (await registry.listInstances(service)).length === 2, 20_000)
    const result = await runCli(['chaos', 'kill-instance', service, '-b', backend, '--yes', '--json'], {
      env,
      timeoutMs: 60_000,
    })
    expect(result.code, result.stderr).toBe(0)
    const report = JSON.parse(result.stdout) as KillInstanceReport
    expect(report.ok, report.problems.join('; ')).toBe(true)
    const [victim] = report.instances
    expect(victim!.target.kind).toBe('container')
    expect([one.id, two.id]).toContain(victim!.target.containerId)
    expect(victim!.how).toBe('removed')
    expect(victim!.goneMs).toBeLessThan(10_000)
    const other = victim!.target.containerId === one.id ? two : one
    expect(await running(victim!.target.containerId!)).toBe('false')
    expect(await running(other.id)).toBe('true')
    expect((await registry.listInstances(service)).map((i) => i.source?.containerId)).toEqual([other.id])
  })
})
