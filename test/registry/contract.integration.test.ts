import type {ChildProcess} from 'node:child_process'
import {setTimeout as sleep} from 'node:timers/promises'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {clusterStatus, startMember, stopMember} from '../../src/lib/cluster/index.js'
import {openRegistry} from '../../src/lib/registry/index.js'
import type {MemberStatus} from '../../src/lib/cluster/types.js'
import type {Registry, ServiceInstance, WatchEvent} from '../../src/lib/registry/types.js'
import {testBackends, uniqueService} from '../helpers/backends.js'
import {eventually, runCli, spawnCli, waitForExit, waitForOutput} from '../helpers/cli.js'
import {testCluster, withClusterLock} from '../helpers/clusters.js'
import {memberDrill, presentThrough} from '../helpers/member-drills.js'
import {plantRecord} from '../helpers/plant.js'

/** The lifecycle tests' TTL, and the refresh period svc derives from it (a third). */
const TTL_MS = 3000
const REFRESH_MS = TTL_MS / 3

/** A `svc register` process, its stderr kept for counting the lifecycle's lines. */
interface Registrar {
  child: ChildProcess
  stderr(): string
  count(pattern: RegExp): number
}

async function startRegistrar(uri: string, service: string, port: number): Promise<Registrar> {
  const args = ['register', service, '--port', String(port), '--address', '127.0.0.1', '--ttl', `${TTL_MS}ms`]
  const child = spawnCli([...args, '-b', uri])
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  await waitForOutput(child, /^registered /, 30_000)
  return {
    child,
    stderr: () => stderr,
    count: (pattern) => stderr.split('\n').filter((line) => pattern.test(line)).length,
  }
}

async function stopRegistrar(registrar: Registrar): Promise<void> {
  registrar.child.kill('SIGCONT')
  registrar.child.kill('SIGTERM')
  await waitForExit(registrar.child, 20_000).catch(() => registrar.child.kill('SIGKILL'))
}

/** Listed and passing: on Consul a lapsed TTL shows as critical, elsewhere the record goes. */
async function present(registry: Registry, service: string, port: number): Promise<boolean> {
  return (await registry.listInstances(service)).some((i) => i.port === port && i.health === 'passing')
}

/** The lost/restored pair of one loss episode: each once, and nothing more after another refresh. */
async function expectOneEpisode(registrar: Registrar): Promise<void> {
  await eventually(async () => registrar.count(/registration restored/) > 0, REFRESH_MS + 1000)
  await sleep(REFRESH_MS * 2)
  expect(registrar.count(/registration lost/), registrar.stderr()).toBe(1)
  expect(registrar.count(/registration restored/), registrar.stderr()).toBe(1)
}

// One suite, run unchanged against every backend.
describe.each(testBackends())('registry contract: $name', (backend) => {
  let registry: Registry

  beforeAll(async () => {
    registry = await openRegistry(backend.uri)
    await registry.ping()
  })

  afterAll(async () => {
    await registry?.close()
  })

  it('resolves a registration within 1 s, with tags and meta intact', async () => {
    const service = uniqueService('web')
    const started = Date.now()
    const handle = await registry.register({
      service,
      address: '127.0.0.1',
      port: 8080,
      tags: ['v1', 'blue'],
      meta: {version: '1.2.3', 'team.owner': 'payments', empty: ''},
    })
    const [found] = await eventually(async () => {
      const list = await registry.listInstances(service)
      return list.length > 0 ? list : undefined
    }, 1000)
    expect(Date.now() - started).toBeLessThan(1000)
    expect(found).toMatchObject({
      service,
      id: `${service}:127.0.0.1:8080`,
      address: '127.0.0.1',
      port: 8080,
      meta: {version: '1.2.3', 'team.owner': 'payments', empty: ''},
      health: 'passing',
    })
    expect(found!.tags.sort()).toEqual(['blue', 'v1'])
    const services = await registry.listServices()
    expect(services.find((s) => s.name === service)).toEqual({name: service, instances: 1, passing: 1})
    await handle.close()
  })

  it('deregisters, and says so only once', async () => {
    const service = uniqueService('api')
    const handle = await registry.register({service, id: 'api-1', address: '127.0.0.1', port: 9001})
    await registry.register({service, id: 'api-2', address: '127.0.0.1', port: 9002})
    expect((await registry.deregister(service, 'api-1')).removed).toBe(true)
    expect((await registry.deregister(service, 'api-1')).removed).toBe(false)
    const left = await registry.listInstances(service)
    expect(left.map((i) => i.id)).toEqual(['api-2'])
    expect((await registry.deregister(service, 'api-2')).removed).toBe(true)
    expect(await registry.listInstances(service)).toEqual([])
    await handle.close({deregister: false})
  })

  it('reports health set by the owner', async () => {
    const service = uniqueService('health')
    const handle = await registry.register({service, address: '127.0.0.1', port: 7000})
    await handle.setHealth('critical', 'test says so')
    const instance = await eventually(async () => {
      const [i] = await registry.listInstances(service)
      return i?.health === 'critical' ? i : undefined
    }, 3000)
    expect(instance.health).toBe('critical')
    await handle.setHealth('passing', 'back')
    await eventually(async () => (await registry.listInstances(service))[0]?.health === 'passing', 3000)
    await handle.close()
  })

  it('watch yields the snapshot, then the addition, the change of tags and meta, and the removal', async () => {
    const service = uniqueService('watched')
    const first = await registry.register({service, id: 'one', address: '127.0.0.1', port: 7101})
    const controller = new AbortController()
    const events: WatchEvent[] = []
    const iterator = registry.watch(service, {signal: controller.signal})[Symbol.asyncIterator]()
    const nextChange = async (): Promise<WatchEvent> => {
      for (;;) {
        const result = await Promise.race([
          iterator.next(),
          new Promise<never>((_, reject) => {
            setTimeout(() => reject(new Error(`no watch event; got ${JSON.stringify(events)}`)), 10_000)
          }),
        ])
        if (result.done) throw new Error('watch ended')
        events.push(result.value)
        if (result.value.type !== 'status') return result.value
      }
    }

    const snapshot = await nextChange()
    expect(snapshot.type).toBe('snapshot')
    expect((snapshot as {instances: ServiceInstance[]}).instances.map((i) => i.id)).toEqual(['one'])

    const second = await registry.register({service, id: 'two', address: '127.0.0.1', port: 7102, tags: ['x']})
    const added = await nextChange()
    expect(added).toMatchObject({type: 'added', instance: {id: 'two', port: 7102, tags: ['x']}})

    await second.update({tags: ['y', 'z'], meta: {version: '2'}})
    const changed = await nextChange()
    expect(changed).toMatchObject({
      type: 'changed',
      instance: {id: 'two', meta: {version: '2'}},
      previous: {id: 'two', tags: ['x'], meta: {}},
    })
    expect((changed as {instance: ServiceInstance}).instance.tags.sort()).toEqual(['y', 'z'])

    await second.close()
    const removed = await nextChange()
    expect(removed).toMatchObject({type: 'removed', instance: {id: 'two'}})

    controller.abort()
    await first.close()
    const changes = events.filter((e) => e.type !== 'status')
    expect(changes.map((e) => e.type)).toEqual(['snapshot', 'added', 'changed', 'removed'])
  })

  it('removes the instance when the registering process gets SIGTERM', async () => {
    const service = uniqueService('term')
    const child = spawnCli(['register', service, '--port', '7201', '--address', '127.0.0.1', '-b', backend.uri])
    await waitForOutput(child, /^registered /)
    // another client reads through another member, which may lag the registrar's by a moment (ZooKeeper followers)
    await eventually(async () => (await registry.listInstances(service)).length === 1, 1000)
    child.kill('SIGTERM')
    expect(await waitForExit(child)).toBe(0)
    await eventually(async () => (await registry.listInstances(service)).length === 0, 1000)
  })

  it('removes the instance (Consul: marks it critical) within its TTL when the owner is killed', async () => {
    const service = uniqueService('kill')
    const ttlMs = 3000
    const child = spawnCli([
      'register',
      service,
      '--port',
      '7301',
      '--address',
      '127.0.0.1',
      '--ttl',
      '3s',
      '-b',
      backend.uri,
    ])
    await waitForOutput(child, /^registered /)
    const killedAt = Date.now()
    child.kill('SIGKILL')
    await waitForExit(child)
    const gone = await eventually(async () => {
      const list = await registry.listInstances(service)
      return backend.name === 'consul' ? list[0]?.health === 'critical' : list.length === 0
    }, ttlMs + 4000)
    expect(gone).toBe(true)
    // ZooKeeper ends sessions on tick boundaries and Consul runs TTL checks a little late: a small allowance.
    expect(Date.now() - killedAt).toBeLessThan(ttlMs + 3000)
    if (backend.name === 'consul') await registry.deregister(service, `${service}:127.0.0.1:7301`)
  })

  it('presence: after a pause of twice the TTL the owner restores its instance within a refresh + 1 s, with one lost and one restored line', async () => {
    const service = uniqueService('paused')
    const registrar = await startRegistrar(backend.uri, service, 7501)
    try {
      expect(await present(registry, service, 7501)).toBe(true)
      registrar.child.kill('SIGSTOP')
      const stoppedAt = Date.now()
      await eventually(async () => !(await present(registry, service, 7501)), 2 * TTL_MS + 1000)
      await sleep(Math.max(0, stoppedAt + 2 * TTL_MS - Date.now()))
      registrar.child.kill('SIGCONT')
      const resumedAt = Date.now()
      await eventually(() => present(registry, service, 7501), REFRESH_MS + 1000, 25)
      expect(Date.now() - resumedAt).toBeLessThan(REFRESH_MS + 1000)
      await expectOneEpisode(registrar)
    } finally {
      await stopRegistrar(registrar)
    }
  })

  it('removal by others: svc deregister from another process warns who restores it, and the owner does within a refresh + 1 s', async () => {
    const service = uniqueService('removed')
    const registrar = await startRegistrar(backend.uri, service, 7502)
    try {
      const id = `${service}:127.0.0.1:7502`
      const removal = await runCli(['deregister', service, id, '-b', backend.uri], {timeoutMs: 30_000})
      expect(removal.code, removal.stderr).toBe(0)
      expect(removal.stderr).toContain(`pid ${registrar.child.pid} on host`)
      expect(removal.stderr).toMatch(/will register it again: stop that process to remove it for good/)
      await eventually(() => present(registry, service, 7502), REFRESH_MS + 1000, 25)
      await expectOneEpisode(registrar)
    } finally {
      await stopRegistrar(registrar)
    }
  })

  it('removal: an instance without a live owner is removed for good, without a warning', async () => {
    const service = uniqueService('orphan')
    const id = `${service}:127.0.0.1:7503`
    await plantRecord(backend.uri, {service, id, address: '127.0.0.1', port: 7503})
    await eventually(async () => (await registry.listInstances(service)).length === 1, 5000)
    const removal = await runCli(['deregister', service, id, '-b', backend.uri], {timeoutMs: 30_000})
    expect(removal.code, removal.stderr).toBe(0)
    expect(removal.stderr).toBe('')
    await sleep(REFRESH_MS + 1000)
    expect(await registry.listInstances(service)).toEqual([])
  })

  it('uniqueness: a second owner of the same id is refused, naming the first, and the first keeps it', async () => {
    const service = uniqueService('dup')
    const first = await startRegistrar(backend.uri, service, 7504)
    try {
      const args = ['register', service, '--port', '7504', '--address', '127.0.0.1', '-b', backend.uri]
      const second = await runCli(args, {timeoutMs: 30_000})
      expect(second.code).toBe(1)
      expect(second.stdout).toBe('')
      expect(second.stderr).toContain(`is already registered by pid ${first.child.pid} on host`)
      expect(second.stderr.trim().split('\n')).toHaveLength(1)
      await sleep(REFRESH_MS)
      expect(await present(registry, service, 7504)).toBe(true)
      expect(first.count(/registration lost/)).toBe(0)
    } finally {
      await stopRegistrar(first)
    }
  })

  it('close: every method of a closed handle throws the same error', async () => {
    const service = uniqueService('closed')
    const handle = await registry.register({service, address: '127.0.0.1', port: 7505})
    await handle.close()
    const errors = await Promise.all(
      [() => handle.setHealth('critical'), () => handle.update({tags: ['late']}), () => handle.close()].map(
        async (call) =>
          call().then(
            () => undefined,
            (error: unknown) => error,
          ),
      ),
    )
    for (const error of errors) expect(error).toBeInstanceOf(Error)
    const messages = new Set(errors.map((e) => (e as Error).message))
    expect([...messages]).toEqual([`the registration of ${service} ${service}:127.0.0.1:7505 is closed`])
    expect(await registry.listInstances(service)).toEqual([])
  })

  it('codec: a record without health, written by another tool, decodes to the same instance on every backend that keeps health in the record', async () => {
    const service = uniqueService('nohealth')
    const id = `${service}:127.0.0.1:7506`
    await plantRecord(backend.uri, {service, id, address: '127.0.0.1', port: 7506})
    const expected: ServiceInstance = {
      service,
      id,
      address: '127.0.0.1',
      port: 7506,
      tags: [],
      meta: {},
      // Consul keeps health in checks, not in the record: with none of its own, Consul's answer (node checks) stands
      health: registry.kind === 'consul' ? 'passing' : 'unknown',
    }
    const listed = await eventually(async () => {
      const list = await registry.listInstances(service)
      return list.length > 0 ? list : undefined
    }, 5000)
    expect(listed).toEqual([expected])
    const removal = await registry.deregister(service, id)
    expect(removal).toEqual({removed: true})
  })

  if (backend.cluster) {
    const kind = backend.cluster
    // the lock keeps other test files from stopping a second member of the same cluster meanwhile
    it('keeps serving with one cluster member stopped', () =>
      withClusterLock(kind, async () => {
        const {manifest} = testCluster(kind)
        const status = await clusterStatus(manifest)
        const follower = status.find((m) => m.role === 'follower')
        expect(follower).toBeDefined()
        const others = status.filter((m) => m.index !== follower!.index).map((m) => m.address)
        // the stopped member comes first, so the client has to fail over
        const hosts = [follower!.address, ...others].join(',')
        const uri = backend.uri.replace(/^(\w+:\/\/)[^/]+/, `$1${hosts}`)
        await stopMember(manifest, follower!.index, 'SIGKILL')
        const degraded = await openRegistry(uri, {connectTimeoutMs: 8000})
        try {
          const service = uniqueService('failover')
          const handle = await degraded.register({service, address: '127.0.0.1', port: 7401})
          expect((await degraded.listInstances(service)).map((i) => i.port)).toEqual([7401])
          const info = await degraded.cluster()
          expect(info.members.find((m) => m.address === follower!.address)?.reachable).toBe(false)
          await handle.close()
          expect(await degraded.listInstances(service)).toEqual([])
        } finally {
          await degraded.close()
          await startMember(manifest, follower!.index)
        }
      }))

    for (const [name, pick] of [
      ['the member the registrar talks to stops and starts again', (_: MemberStatus[], used: MemberStatus) => used],
      ['the leader is killed', (members: MemberStatus[]) => members.find((m) => m.role === 'leader')!],
    ] as const) {
      it(`members: ${name}; the instance is present again within the election time + 2 s, one episode at most`, () =>
        withClusterLock(kind, async () => {
          const service = uniqueService('member')
          const registrar = await startRegistrar(backend.uri, service, 7402)
          try {
            const drill = await memberDrill({
              kind,
              uri: backend.uri,
              registrar: registrar.child,
              pick,
              present: (uri) => presentThrough(uri, service, 7402),
              timeoutMs: 45_000,
            })
            console.info(
              `${kind}: ${drill.victim.role} ${drill.victim.address} stopped: election ${drill.electionMs} ms, present ${drill.presentMs} ms`,
            )
            expect(drill.presentMs, registrar.stderr()).toBeLessThan(drill.electionMs + 2000)
            // the member is back; a refresh or two later there is nothing more to report
            await sleep(REFRESH_MS * 3)
            expect(registrar.count(/registration lost/), registrar.stderr()).toBeLessThanOrEqual(1)
            expect(registrar.count(/registration restored/)).toBe(registrar.count(/registration lost/))
            expect(await present(registry, service, 7402)).toBe(true)
          } finally {
            await stopRegistrar(registrar)
          }
        }))
    }
  }
})
