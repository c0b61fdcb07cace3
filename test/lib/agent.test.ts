import {existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {PassThrough} from 'node:stream'
import {setTimeout as sleep} from 'node:timers/promises'

import type Dockerode from 'dockerode'
import {afterEach, describe, expect, it} from 'vitest'

import {Agent} from '../../src/lib/docker/agent.js'
import {isSigkill} from '../../src/lib/docker/container-events.js'
import type {AgentEvent, AgentOptions} from '../../src/lib/docker/types.js'
import type {
  Health,
  InstanceInput,
  RegisterOptions,
  Registry,
  RegistrationHandle,
  Removal,
  ServiceInstance,
} from '../../src/lib/registry/types.js'
import {withDefaults} from '../../src/lib/registry/options.js'
import {toInstance} from '../../src/lib/registry/validate.js'
import {localRegistry} from '../helpers/local.js'

const OPTIONS: AgentOptions = {
  hostname: 'host1',
  internal: false,
  explicit: false,
  tags: [],
  cleanup: false,
  deregister: 'always',
  retryAttempts: 0,
  retryIntervalMs: 10,
}

interface FakeContainer {
  id: string
  name: string
  running: boolean
  paused?: boolean
  exitCode?: number
  hostPort: number
  env?: string[]
}

/** Docker as the agent sees it: ping, events, list, inspect; events are pushed by the test. */
class FakeDocker {
  readonly containers = new Map<string, FakeContainer>()
  streams: PassThrough[] = []
  /** Held while set: listContainers waits for it (to send events during the initial sync). */
  listGate?: Promise<void>
  down = false

  async ping(): Promise<string> {
    if (this.down) throw new Error('connect ENOENT /var/run/docker.sock')
    return 'OK'
  }

  async getEvents(): Promise<PassThrough> {
    if (this.down) throw new Error('connect ENOENT /var/run/docker.sock')
    const stream = new PassThrough()
    this.streams.push(stream)
    return stream
  }

  async listContainers(): Promise<Array<{Id: string}>> {
    await this.listGate
    return [...this.containers.values()].filter((c) => c.running).map((c) => ({Id: c.id}))
  }

  getContainer(id: string): {inspect(): Promise<unknown>} {
    return {
      inspect: async () => {
        await sleep(1)
        const c = this.containers.get(id)
        if (!c) throw Object.assign(new Error('no such container'), {statusCode: 404})
        return {
          Id: c.id,
          Name: `/${c.name}`,
          Image: 'sha256:abc',
          Config: {Image: 'web:latest', Env: c.env ?? [], Labels: {}, ExposedPorts: {'80/tcp': {}}},
          State: {Running: c.running, Paused: c.paused ?? false, ExitCode: c.exitCode ?? 0, Status: 'running'},
          HostConfig: {NetworkMode: 'bridge'},
          NetworkSettings: {
            IPAddress: '172.17.0.2',
            Networks: {bridge: {IPAddress: '172.17.0.2'}},
            Ports: c.running ? {'80/tcp': [{HostIp: '127.0.0.1', HostPort: String(c.hostPort)}]} : {},
          },
        }
      },
    }
  }

  send(id: string, action: string, attributes: Record<string, string> = {}): void {
    const line = JSON.stringify({
      Type: 'container',
      Action: action,
      Actor: {ID: id, Attributes: attributes},
      timeNano: Date.now() * 1e6,
    })
    for (const s of this.streams) s.write(`${line}\n`)
  }

  /** The daemon goes away: every event stream ends. */
  stopDaemon(): void {
    this.down = true
    for (const s of this.streams) s.end()
    this.streams = []
  }
}

/** An in-memory registry that records calls and fails the test's expectations if one container's calls overlap. */
class FakeRegistry implements Registry {
  readonly kind = 'local' as const
  readonly nativeChecks = false
  readonly description = 'fake://'
  readonly instances = new Map<string, ServiceInstance>()
  readonly calls: string[] = []
  readonly overlaps: string[] = []
  private readonly busy = new Set<string>()
  failFor?: string

  async ping(): Promise<void> {}

  async register(input: InstanceInput, _opts?: RegisterOptions): Promise<RegistrationHandle> {
    const instance = toInstance(input)
    if (this.failFor && instance.service === this.failFor) throw new Error(`refused ${instance.service}`)
    await this.slow(`register ${instance.id}`, instance.source?.containerId ?? '')
    this.instances.set(instance.id, instance)
    const handle: RegistrationHandle = {
      instance,
      setHealth: async (health: Health) => {
        await this.slow(`health ${instance.id} ${health}`, instance.source?.containerId ?? '')
        instance.health = health
      },
      update: async (changes) => {
        await this.slow(`update ${instance.id}`, instance.source?.containerId ?? '')
        Object.assign(instance, changes)
      },
      close: async (opts) => {
        await this.slow(`close ${instance.id}`, instance.source?.containerId ?? '')
        if (opts?.deregister !== false) this.instances.delete(instance.id)
      },
    }
    return handle
  }

  async deregister(_service: string, id: string): Promise<Removal> {
    return {removed: this.instances.delete(id)}
  }

  async listServices() {
    const names = new Set([...this.instances.values()].map((i) => i.service))
    return [...names].map((name) => ({name, instances: 1, passing: 1}))
  }

  async listInstances(service: string): Promise<ServiceInstance[]> {
    return [...this.instances.values()].filter((i) => i.service === service)
  }

  watch(): AsyncIterable<never> {
    throw new Error('not used')
  }

  async cluster() {
    return {backend: 'local' as const, members: []}
  }

  async close(): Promise<void> {}

  private async slow(call: string, container: string): Promise<void> {
    if (this.busy.has(container)) this.overlaps.push(call)
    this.busy.add(container)
    this.calls.push(call)
    await sleep(5)
    this.busy.delete(container)
  }
}

const controllers: AbortController[] = []
afterEach(() => {
  for (const c of controllers.splice(0)) c.abort()
})

function makeAgent(options: Partial<AgentOptions> = {}) {
  const docker = new FakeDocker()
  const registry = new FakeRegistry()
  const agent = new Agent({registry, docker: docker as unknown as Dockerode, options: {...OPTIONS, ...options}})
  const events: AgentEvent[] = []
  agent.on((e) => events.push(e))
  const controller = new AbortController()
  controllers.push(controller)
  const start = (): Promise<void> => agent.start(controller.signal)
  return {agent, controller, docker, events, registry, start}
}

async function until(condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await sleep(5)
  }
}

const connected = (events: AgentEvent[]): number =>
  events.filter((e) => e.type === 'docker' && e.state === 'connected').length

const ids = (registry: FakeRegistry): string[] => [...registry.instances.keys()].sort()

describe('Agent', () => {
  it('registers running containers, holds events that arrive during the first sync, then applies them', async () => {
    const {docker, events, registry, start} = makeAgent()
    docker.containers.set('a', {id: 'a', name: 'web1', running: true, hostPort: 30_001})
    let open!: () => void
    docker.listGate = new Promise((resolve) => {
      open = resolve
    })
    const running = start()
    await until(() => docker.streams.length === 1)
    // b starts after the subscription, before the listing answers: seen through the buffered event
    docker.containers.set('b', {id: 'b', name: 'web2', running: true, hostPort: 30_002})
    docker.send('b', 'start')
    // a stops during the sync too: applied after it, so it ends deregistered
    docker.send('a', 'die', {exitCode: '0'})
    docker.containers.get('a')!.running = false
    open()
    await until(() => connected(events) === 1)
    await until(() => ids(registry).join(',') === 'host1:web2:80')
    expect(events.map((e) => e.type)).toContain('resync')
    expect(running).toBeInstanceOf(Promise)
  })

  it('serializes one container’s registry calls across a fast start/stop/start', async () => {
    const {docker, registry, start} = makeAgent()
    start()
    await until(() => docker.streams.length === 1)
    await sleep(20)
    const c: FakeContainer = {id: 'c', name: 'fast', running: true, hostPort: 30_003}
    docker.containers.set('c', c)
    docker.send('c', 'start')
    docker.send('c', 'die', {exitCode: '0'})
    docker.send('c', 'start')
    docker.send('c', 'pause')
    docker.send('c', 'unpause')
    await until(() => registry.calls.length >= 3)
    await sleep(100)
    expect(registry.overlaps).toEqual([])
    expect(ids(registry)).toEqual(['host1:fast:80'])
    expect(registry.calls.slice(0, 3)).toEqual([
      'register host1:fast:80',
      'close host1:fast:80',
      'register host1:fast:80',
    ])
  })

  it('kill -9 deregisters at once, before die; die after it changes nothing', async () => {
    const {docker, events, registry, start} = makeAgent()
    docker.containers.set('n', {id: 'n', name: 'nine', running: true, hostPort: 30_008})
    start()
    await until(() => ids(registry).length === 1)
    // Docker sends kill, then die once the process is gone: the instance leaves on the first
    docker.send('n', 'kill', {signal: '9'})
    await until(() => ids(registry).length === 0)
    docker.containers.get('n')!.running = false
    docker.send('n', 'die', {exitCode: '137'})
    await sleep(30)
    expect(events.filter((e) => e.type === 'deregistered')).toHaveLength(1)
    expect(registry.calls.filter((c) => c.startsWith('close'))).toEqual(['close host1:nine:80'])
  })

  it('recognises SIGKILL by number and by name only', () => {
    expect(['9', 'KILL', 'SIGKILL', 'sigkill'].map((s) => isSigkill(s))).toEqual([true, true, true, true])
    expect(['1', 'HUP', 'SIGTERM', '15', undefined].map((s) => isSigkill(s))).toEqual([
      false,
      false,
      false,
      false,
      false,
    ])
  })

  it('kill with another signal alone deregisters nothing; die does; pause and health_status set health', async () => {
    const {docker, events, registry, start} = makeAgent()
    docker.containers.set('k', {id: 'k', name: 'killed', running: true, hostPort: 30_004})
    start()
    await until(() => ids(registry).length === 1)
    docker.send('k', 'kill', {signal: '1'})
    docker.send('k', 'pause')
    docker.containers.get('k')!.paused = true
    await until(() => registry.instances.get('host1:killed:80')?.health === 'critical')
    docker.containers.get('k')!.paused = false
    docker.send('k', 'unpause')
    await until(() => registry.instances.get('host1:killed:80')?.health === 'passing')
    docker.send('k', 'health_status: unhealthy')
    await until(() => registry.instances.get('host1:killed:80')?.health === 'critical')
    docker.send('k', 'health_status: healthy')
    await until(() => registry.instances.get('host1:killed:80')?.health === 'passing')
    expect(ids(registry)).toEqual(['host1:killed:80'])
    docker.containers.get('k')!.running = false
    docker.send('k', 'die', {exitCode: '137'})
    await until(() => ids(registry).length === 0)
    expect(events.find((e) => e.type === 'deregistered')).toMatchObject({reason: 'container exited with code 137'})
  })

  it('--deregister on-success keeps a failed container, critical, until it is destroyed', async () => {
    const {docker, registry, start} = makeAgent({deregister: 'on-success'})
    docker.containers.set('f', {id: 'f', name: 'failing', running: true, hostPort: 30_005})
    start()
    await until(() => ids(registry).length === 1)
    Object.assign(docker.containers.get('f')!, {running: false, exitCode: 2})
    docker.send('f', 'die', {exitCode: '2'})
    docker.send('f', 'stop')
    await until(() => registry.instances.get('host1:failing:80')?.health === 'critical')
    await sleep(30)
    expect(ids(registry)).toEqual(['host1:failing:80'])
    docker.containers.delete('f')
    docker.send('f', 'destroy')
    await until(() => ids(registry).length === 0)
  })

  it('reports a container it cannot register and serves the others', async () => {
    const {docker, events, registry, start} = makeAgent()
    registry.failFor = 'broken'
    docker.containers.set('x', {id: 'x', name: 'x', running: true, hostPort: 30_006, env: ['SERVICE_NAME=broken']})
    docker.containers.set('y', {id: 'y', name: 'y', running: true, hostPort: 30_007, env: ['SERVICE_NAME=fine']})
    start()
    await until(() => ids(registry).join(',') === 'host1:y:80')
    await until(() => events.some((e) => e.type === 'error'))
    expect(events.find((e) => e.type === 'error')).toMatchObject({container: 'x'})
  })

  it('reconnects when the daemon restarts, resyncs, and deregisters what vanished meanwhile', async () => {
    const {docker, events, registry, start} = makeAgent()
    docker.containers.set('r', {id: 'r', name: 'gone', running: true, hostPort: 30_008})
    start()
    await until(() => ids(registry).length === 1)
    docker.stopDaemon()
    docker.containers.delete('r')
    await until(() => events.some((e) => e.type === 'docker' && e.state === 'reconnecting'))
    await sleep(150)
    docker.containers.set('n', {id: 'n', name: 'new', running: true, hostPort: 30_009})
    docker.down = false
    await until(() => connected(events) === 2, 5000)
    expect(ids(registry)).toEqual(['host1:new:80'])
    docker.send('n', 'destroy')
    docker.containers.delete('n')
    await until(() => ids(registry).length === 0)
  })

  it('deregisters everything when stopped, and the snapshot shows containers and services', async () => {
    const {agent, controller, docker, registry, start} = makeAgent()
    docker.containers.set('s', {id: 's', name: 'snap', running: true, hostPort: 30_010})
    const running = start()
    await until(() => ids(registry).length === 1)
    const snapshot = agent.snapshot()
    expect(snapshot.docker).toBe('connected')
    expect(snapshot.containers).toMatchObject([
      {id: 's', name: 'snap', state: 'running', services: [{id: 'host1:snap:80', port: 30_010}]},
    ])
    controller.abort()
    await running
    expect(ids(registry)).toEqual([])
  })
})

describe('Agent --cleanup over a registry holding foreign records', () => {
  it('skips what svc cannot read with one warning across resyncs, and removes none of it', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'svc-agent-foreign-'))
    const logs: string[] = []
    const registry = localRegistry({kind: 'local', dir}, withDefaults({log: (m) => logs.push(m)}))
    const ours = await registry.register({service: 'web', address: '127.0.0.1', port: 1})
    const junk = path.join(dir, 'web', 'junk.json')
    writeFileSync(junk, 'not json')
    mkdirSync(path.join(dir, 'has space'))
    const docker = new FakeDocker()
    const agent = new Agent({
      registry,
      docker: docker as unknown as Dockerode,
      options: {...OPTIONS, cleanup: true, resyncMs: 20},
    })
    const events: AgentEvent[] = []
    agent.on((e) => events.push(e))
    const controller = new AbortController()
    controllers.push(controller)
    const running = agent.start(controller.signal)
    try {
      await until(() => events.filter((e) => e.type === 'resync').length >= 3)
      expect(events.filter((e) => e.type === 'error')).toEqual([])
      expect(logs.filter((l) => l.includes('junk.json'))).toHaveLength(1)
      expect(logs.filter((l) => l.includes('has space'))).toHaveLength(1)
      expect(existsSync(junk)).toBe(true)
      expect((await registry.listInstances('web')).map((i) => i.id)).toEqual([ours.instance.id])
    } finally {
      controller.abort()
      await running
      await registry.close()
      rmSync(dir, {recursive: true, force: true})
    }
  })
})
