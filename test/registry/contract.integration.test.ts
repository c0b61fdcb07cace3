import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {clusterStatus, startMember, stopMember} from '../../src/lib/cluster/index.js'
import {openRegistry} from '../../src/lib/registry/index.js'
import type {Registry, ServiceInstance, WatchEvent} from '../../src/lib/registry/types.js'
import {testBackends, uniqueService} from '../helpers/backends.js'
import {eventually, spawnCli, waitForExit, waitForOutput} from '../helpers/cli.js'
import {testCluster, withClusterLock} from '../helpers/clusters.js'

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
    expect(await registry.deregister(service, 'api-1')).toBe(true)
    expect(await registry.deregister(service, 'api-1')).toBe(false)
    const left = await registry.listInstances(service)
    expect(left.map((i) => i.id)).toEqual(['api-2'])
    expect(await registry.deregister(service, 'api-2')).toBe(true)
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
    expect((await registry.listInstances(service)).length).toBe(1)
    child.kill('SIGTERM')
    expect(await waitForExit(child)).toBe(0)
    expect(await registry.listInstances(service)).toEqual([])
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
  }
})
