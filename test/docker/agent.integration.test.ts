import {type ChildProcess, execFile, spawn} from 'node:child_process'
import {closeSync, openSync, readFileSync} from 'node:fs'
import {setTimeout as sleep} from 'node:timers/promises'

import Dockerode from 'dockerode'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {Agent} from '../../src/lib/docker/agent.js'
import type {AgentEvent, AgentOptions} from '../../src/lib/docker/types.js'
import {openRegistry} from '../../src/lib/registry/index.js'
import type {Registry, ServiceInstance} from '../../src/lib/registry/types.js'
import type {TestBackend} from '../helpers/backends.js'
import {testBackends, uniqueService} from '../helpers/backends.js'
import {eventually, runCli, spawnCli, waitForExit, waitForOutput} from '../helpers/cli.js'
import {endpoints, rawEndpoints} from '../helpers/raw-instances.js'
import {docker, ensureTestImage, type TestContainer, TestContainers, withDockerLock} from '../helpers/docker.js'

const WAIT_MS = 15_000
const containers = new TestContainers('svcagent')

const run = (...args: Parameters<TestContainers['run']>): Promise<TestContainer> => containers.run(...args)

const endpointOf = async (c: TestContainer): Promise<string> => `127.0.0.1:${await containers.hostPort(c)}`

/** Starts `svc agent` as a process with NDJSON output; resolves once it follows Docker events. */
async function startAgent(backend: TestBackend, hostname: string, extra: string[] = []): Promise<ChildProcess> {
  const child = spawnCli(['agent', '-b', backend.uri, '--hostname', hostname, '--json', ...extra])
  await waitForOutput(child, /"type":"docker","state":"connected"/, 20_000)
  return child
}

async function stopAgent(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return
  child.kill('SIGTERM')
  await waitForExit(child, 20_000).catch(() => child.kill('SIGKILL'))
}

describe.each(testBackends())('svc agent on $name', (backend) => {
  // the in-process checks need no server of their own: they run once, on the local backend, and are not
  // defined (rather than skipped) for the others
  const localOnly: typeof it = backend.name === 'local' ? it : ((() => {}) as unknown as typeof it)
  const hostname = `svct-${backend.name}-${Date.now().toString(36)}`
  let registry: Registry
  let agent: ChildProcess | undefined

  const instancesOf = (service: string): Promise<ServiceInstance[]> => registry.listInstances(service)

  /** Waits until the service's instances are exactly these endpoints (through svc's library). */
  const expectEndpoints = (service: string, expected: string[], timeoutMs = WAIT_MS): Promise<ServiceInstance[]> =>
    eventually(
      async () => {
        const instances = await instancesOf(service)
        return JSON.stringify(endpoints(instances)) === JSON.stringify([...expected].sort()) ? instances : undefined
      },
      timeoutMs,
      25,
    ).catch(async (error: unknown) => {
      throw new Error(
        `${service}: wanted ${expected.join(', ') || 'nothing'}, have ${endpoints(await instancesOf(service)).join(', ') || 'nothing'} (${String(error)})`,
      )
    })

  beforeAll(async () => {
    await ensureTestImage()
    registry = await openRegistry(backend.uri)
    agent = await startAgent(backend, hostname)
  }, 180_000)

  afterAll(async () => {
    await stopAgent(agent)
    await containers.cleanup()
    await registry?.close()
  }, 60_000)

  it('classic scenario: start service_1, start service_2, scale service_2 to 2, stop service_1', async () => {
    const s1 = uniqueService('service_1')
    const s2 = uniqueService('service_2')

    const c1 = await run({name: `${backend.name}-s1-1`, env: {SERVICE_NAME: s1}})
    const e1 = await endpointOf(c1)
    const [i1] = await expectEndpoints(s1, [e1])
    expect(i1).toMatchObject({
      id: `${hostname}:${c1.name}:80`,
      health: 'passing',
      source: {containerName: c1.name, host: hostname},
    })
    expect(i1!.source!.containerId.startsWith(c1.id.slice(0, 12))).toBe(true)
    expect(await rawEndpoints(backend, s1)).toEqual([e1])

    const c2 = await run({name: `${backend.name}-s2-1`, env: {SERVICE_NAME: s2}})
    const e2 = await endpointOf(c2)
    await expectEndpoints(s2, [e2])
    expect(await rawEndpoints(backend, s2)).toEqual([e2])

    const c3 = await run({name: `${backend.name}-s2-2`, env: {SERVICE_NAME: s2}})
    const e3 = await endpointOf(c3)
    await expectEndpoints(s2, [e2, e3])
    expect(await rawEndpoints(backend, s2)).toEqual([e2, e3].sort())
    const resolved = await runCli(['resolve', s2, '-b', backend.uri, '--json'])
    expect(resolved.code, resolved.stderr).toBe(0)
    expect(endpoints(JSON.parse(resolved.stdout) as ServiceInstance[])).toEqual([e2, e3].sort())

    await containers.stop(c1)
    await expectEndpoints(s1, [])
    expect(await rawEndpoints(backend, s1)).toEqual([])
    expect(await rawEndpoints(backend, s2)).toEqual([e2, e3].sort())
    const gone = await runCli(['resolve', s1, '-b', backend.uri])
    expect(gone.code).toBe(1)
  })

  it('labels win over env for the same key, per-port keys over generic ones', async () => {
    const fromEnv = uniqueService('from-env')
    const fromLabel = uniqueService('from-label')
    const c = await run({
      name: `${backend.name}-meta`,
      env: {SERVICE_NAME: fromEnv, SERVICE_VERSION: 'env', SERVICE_80_TAGS: 'port-tag', SERVICE_TIER: 'web'},
      labels: {SERVICE_NAME: fromLabel, SERVICE_VERSION: 'label', SERVICE_TAGS: 'generic-tag'},
    })
    const [instance] = await expectEndpoints(fromLabel, [await endpointOf(c)])
    expect(instance!.meta).toMatchObject({version: 'label', tier: 'web'})
    expect(instance!.tags).toContain('port-tag')
    expect(instance!.tags).not.toContain('generic-tag')
    expect(await instancesOf(fromEnv)).toEqual([])
  })

  it('a health check that starts failing makes the instance critical, and resolve skips it', async () => {
    const service = uniqueService('checked')
    const c = await run({
      name: `${backend.name}-check`,
      env: {
        SERVICE_NAME: service,
        SERVICE_CHECK_HTTP: '/cgi-bin/health',
        SERVICE_CHECK_INTERVAL: '500ms',
        SERVICE_CHECK_TIMEOUT: '2s',
      },
    })
    const e = await endpointOf(c)
    await expectEndpoints(service, [e])
    await eventually(async () => (await instancesOf(service))[0]?.health === 'passing', WAIT_MS)
    expect((await runCli(['resolve', service, '-b', backend.uri, '--pick'])).stdout.trim()).toBe(e)

    await containers.setHealthy(c, false)
    await eventually(async () => (await instancesOf(service))[0]?.health === 'critical', WAIT_MS)
    const skipped = await runCli(['resolve', service, '-b', backend.uri])
    expect(skipped.code).toBe(1)

    await containers.setHealthy(c, true)
    await eventually(async () => (await instancesOf(service))[0]?.health === 'passing', WAIT_MS)
  })

  it('pause marks the instance critical, unpause passing again', async () => {
    const service = uniqueService('pausing')
    const c = await run({name: `${backend.name}-pause`, env: {SERVICE_NAME: service}})
    await expectEndpoints(service, [await endpointOf(c)])
    await containers.pause(c)
    await eventually(async () => (await instancesOf(service))[0]?.health === 'critical', WAIT_MS)
    await containers.unpause(c)
    await eventually(async () => (await instancesOf(service))[0]?.health === 'passing', WAIT_MS)
  })

  it('--cleanup removes what an agent killed with SIGKILL left behind for a container that stopped', async () => {
    const staying = uniqueService('staying')
    const leaving = uniqueService('leaving')
    const keep = await run({name: `${backend.name}-keep`, env: {SERVICE_NAME: staying}})
    const left = await run({name: `${backend.name}-left`, env: {SERVICE_NAME: leaving}})
    const keepEndpoint = await endpointOf(keep)
    const leftEndpoint = await endpointOf(left)
    await expectEndpoints(staying, [keepEndpoint])
    await expectEndpoints(leaving, [leftEndpoint])

    agent!.kill('SIGKILL')
    await waitForExit(agent!, 10_000)
    agent = undefined
    await containers.stop(left)
    // nobody deregistered it: the instance outlives its container
    expect(endpoints(await instancesOf(leaving))).toEqual([leftEndpoint])

    const began = Date.now()
    agent = await startAgent(backend, hostname, ['--cleanup'])
    await expectEndpoints(leaving, [], 5000)
    // well before any heartbeat, lease or session would have expired on its own
    expect(Date.now() - began).toBeLessThan(8000)
    expect(await rawEndpoints(backend, leaving)).toEqual([])
    await expectEndpoints(staying, [keepEndpoint])
  })

  localOnly(
    'in-process: --resync restores a removed instance; --deregister on-success keeps a failed exit, critical',
    async () => {
      const ownRegistry = await openRegistry(`${backend.uri}-resync`)
      const service = uniqueService('resynced')
      const failing = uniqueService('failing')
      const options: AgentOptions = {
        hostname: `${hostname}-resync`,
        internal: false,
        explicit: true,
        tags: [],
        resyncMs: 300,
        cleanup: true,
        deregister: 'on-success',
        retryAttempts: 0,
        retryIntervalMs: 100,
      }
      const inProcess = new Agent({registry: ownRegistry, docker: new Dockerode(), options})
      const events: AgentEvent[] = []
      inProcess.on((e) => events.push(e))
      const controller = new AbortController()
      const running = inProcess.start(controller.signal)
      try {
        const c = await run({name: 'resync', env: {SERVICE_NAME: service}})
        const [instance] = await eventually(async () => {
          const list = await ownRegistry.listInstances(service)
          return list.length === 1 ? list : undefined
        }, WAIT_MS)
        expect((await ownRegistry.deregister(service, instance!.id)).removed).toBe(true)
        await eventually(async () => (await ownRegistry.listInstances(service)).length === 1, WAIT_MS)
        expect(events.some((e) => e.type === 'resync')).toBe(true)
        expect(endpoints(await ownRegistry.listInstances(service))).toEqual([await endpointOf(c)])

        const f = await run({
          name: 'exit3',
          env: {SERVICE_NAME: failing},
          command: ['/bin/sh', '-c', 'httpd -p 80 -h /www; sleep 1.5; exit 3'],
        })
        await eventually(async () => (await ownRegistry.listInstances(failing)).length === 1, WAIT_MS)
        await eventually(async () => (await ownRegistry.listInstances(failing))[0]?.health === 'critical', WAIT_MS)
        await sleep(700)
        // resyncs and cleanup keep it: the container exists, it exited with 3
        expect((await ownRegistry.listInstances(failing)).map((i) => i.health)).toEqual(['critical'])
        await containers.remove(f)
        await eventually(async () => (await ownRegistry.listInstances(failing)).length === 0, WAIT_MS)
      } finally {
        controller.abort()
        await running
        await ownRegistry.close()
      }
    },
  )

  localOnly('--internal registers the container address and exposed port, in-process', async () => {
    const internalRegistry = await openRegistry(`${backend.uri}-internal`)
    const service = uniqueService('internal')
    const options: AgentOptions = {
      hostname: `${hostname}-internal`,
      internal: true,
      explicit: true,
      tags: ['inside'],
      cleanup: false,
      deregister: 'always',
      retryAttempts: 0,
      retryIntervalMs: 100,
    }
    const inProcess = new Agent({registry: internalRegistry, docker: new Dockerode(), options})
    const events: AgentEvent[] = []
    inProcess.on((e) => events.push(e))
    const controller = new AbortController()
    const running = inProcess.start(controller.signal)
    try {
      const c = await run({name: 'internal', env: {SERVICE_NAME: service}, publish: [], expose: ['8080']})
      const ip = await docker(['inspect', '--format', '{{.NetworkSettings.IPAddress}}', c.name])
      const instances = await eventually(async () => {
        const list = await internalRegistry.listInstances(service)
        return list.length > 0 ? list : undefined
      }, WAIT_MS)
      // only looked at, never connected to: the bridge address is not reachable from every test host
      expect(endpoints(instances)).toEqual([`${ip}:8080`])
      expect(instances[0]!.tags).toContain('inside')
      expect(events.some((e) => e.type === 'registered' && e.instance.service === service)).toBe(true)
      expect(inProcess.snapshot().containers.some((x) => x.name === c.name)).toBe(true)
    } finally {
      controller.abort()
      await running
      await internalRegistry.close()
    }

    expect(events.some((e) => e.type === 'deregistered' && e.reason === 'agent stopped')).toBe(true)
  })
})

/** The daemon's command line, from /proc, to start it again the same way. */
function dockerdCommand(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8')
    .split('\0')
    .filter((a) => a !== '')
}

async function pidofDockerd(): Promise<number | undefined> {
  return new Promise((resolve) => {
    execFile('pidof', ['dockerd'], (error, stdout) => {
      const pid = Number(stdout.trim().split(/\s+/)[0])
      resolve(error || !Number.isInteger(pid) || pid <= 0 ? undefined : pid)
    })
  })
}

// Last in the file, once: everything above needs a running daemon.
describe('svc agent across a Docker daemon restart', () => {
  const backend = testBackends()[0]!
  const hostname = `svct-restart-${Date.now().toString(36)}`

  async function restartDrill(): Promise<void> {
    const pid = await pidofDockerd()
    if (!pid) throw new Error('no dockerd process found (pidof dockerd)')
    const command = dockerdCommand(pid)
    const registry = await openRegistry(backend.uri)
    const agent = await startAgent(backend, hostname)
    const lines: string[] = []
    agent.stdout!.on('data', (d: Buffer) => lines.push(...d.toString().split('\n')))
    try {
      const before = uniqueService('before')
      const c0 = await containers.run({name: 'before-restart', env: {SERVICE_NAME: before}})
      await eventually(async () => (await registry.listInstances(before)).length === 1, WAIT_MS)

      process.kill(pid, 'SIGTERM')
      await eventually(async () => (await pidofDockerd()) === undefined, 60_000, 200)
      await eventually(async () => lines.some((l) => l.includes('"state":"reconnecting"')), WAIT_MS)
      // the daemon stopped the container on its way down
      await eventually(async () => (await registry.listInstances(before)).length === 0, WAIT_MS)

      const log = openSync('/tmp/svc-test-dockerd.log', 'a')
      const daemon = spawn(command[0]!, command.slice(1), {detached: true, stdio: ['ignore', log, log]})
      daemon.unref()
      closeSync(log)
      await eventually(
        () =>
          new Promise<boolean>((resolve) => {
            execFile('docker', ['info'], {timeout: 5000}, (error) => resolve(!error))
          }),
        60_000,
        500,
      )
      await eventually(
        async () => lines.some((l) => /"type":"docker","state":"connected","detail":"reconnected/.test(l)),
        30_000,
      )
      expect(lines.some((l) => l.includes('"type":"resync"'))).toBe(true)

      const after = uniqueService('after')
      const c1 = await containers.run({name: 'after-restart', env: {SERVICE_NAME: after}})
      const port = await containers.hostPort(c1)
      await eventually(
        async () => endpoints(await registry.listInstances(after)).join(',') === `127.0.0.1:${port}`,
        WAIT_MS,
      )
      await containers.remove(c1)
      await eventually(async () => (await registry.listInstances(after)).length === 0, WAIT_MS)
      await containers.remove(c0)
    } finally {
      await stopAgent(agent)
      await registry.close()
      // never leave the machine without a daemon
      if (!(await pidofDockerd())) {
        const log = openSync('/tmp/svc-test-dockerd.log', 'a')
        spawn(command[0]!, command.slice(1), {detached: true, stdio: ['ignore', log, log]}).unref()
        closeSync(log)
        await sleep(3000)
      }

      await containers.cleanup()
    }
  }

  // the lock keeps other test files' containers out of the restart (a stopping daemon stops them)
  it(
    'reconnects, resyncs, and follows containers started and removed after the restart',
    () => withDockerLock(restartDrill),
    380_000,
  )
})
