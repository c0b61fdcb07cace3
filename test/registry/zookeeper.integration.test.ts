import type {Client} from 'node-zookeeper-client'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {UserError} from '../../src/lib/errors.js'
import {withDefaults} from '../../src/lib/registry/options.js'
import {parseBackend} from '../../src/lib/registry/spec.js'
import type {RegistrationState, ServiceInstance, WatchEvent} from '../../src/lib/registry/types.js'
import {PRIVATE_PORT_META, ZooKeeperRegistry} from '../../src/lib/registry/zookeeper.js'
import {eventually} from '../helpers/cli.js'
import {hasTestCluster, testCluster, withClusterLock} from '../helpers/clusters.js'
import {hostPort, TcpProxy} from '../helpers/tcp-proxy.js'
import {create, exists, getData, mkdirp, ownerOf, rawZkClient} from '../helpers/zookeeper.js'

// ZooKeeper-specific behaviour the shared contract suite does not cover: the registrator-compatible layout,
// foreign payloads, and keeping registrations and watches through fail-over, partitions and session expiry.
const uri = hasTestCluster('zk') ? testCluster('zk').uri : (process.env.SVC_TEST_ZK ?? 'zk://127.0.0.1:21810/svc-test')
const spec = parseBackend(uri)
if (spec.kind !== 'zk') throw new Error(`SVC_TEST_ZK must be a zk:// URI, not ${uri}`)
const hosts = spec.hosts.map((h) => `${h.host}:${h.port}`)
const base = `${spec.base}/zk-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`

interface Opened {
  registry: ZooKeeperRegistry
  logs: string[]
}

const opened: ZooKeeperRegistry[] = []

function open(connect: string[] = hosts): Opened {
  const logs: string[] = []
  const registry = new ZooKeeperRegistry(
    {kind: 'zk', hosts: connect.map((h) => hostPort(h)), base},
    withDefaults({log: (m) => logs.push(m)}),
  )
  opened.push(registry)
  return {registry, logs}
}

/** A plain node-zookeeper-client on the test ensemble. */
const rawClient = (options: Record<string, unknown> = {}): Promise<Client> =>
  rawZkClient(hosts.join(','), undefined, options)

/** The registry's own client, to steal its session the way ZooKeeper's own tests expire one. */
function sessionOf(registry: ZooKeeperRegistry): {id: Buffer; password: Buffer} {
  const session = (registry as unknown as {session?: {client: Client}}).session
  if (!session) throw new Error('no session yet')
  return {id: session.client.getSessionId(), password: session.client.getSessionPassword()}
}

/** Collects a watch stream in the background. */
function collect(stream: AsyncIterable<WatchEvent>): {events: WatchEvent[]; done: Promise<void>} {
  const events: WatchEvent[] = []
  const done = (async () => {
    for await (const event of stream) events.push(event)
  })()
  return {events, done}
}

const ids = (instances: ServiceInstance[]): string[] => instances.map((i) => i.id)

/** Change events as `type port` lines. */
const changes = (events: WatchEvent[]): string[] =>
  events.flatMap((e) => (e.type === 'status' ? [] : [`${e.type}${'instance' in e ? ` ${e.instance.port}` : ''}`]))

describe(`ZooKeeper registry (${uri})`, () => {
  let raw: Client

  beforeAll(async () => {
    raw = await rawClient()
  })

  afterAll(async () => {
    await Promise.all(opened.map((r) => r.close()))
    raw?.close()
  })

  it('writes a registrator-compatible ephemeral znode at <base>/<service>/<address>:<port>', async () => {
    const {registry} = open()
    const source = {containerId: 'c0ffee', containerName: 'web-1', image: 'web:1', host: 'h1'}
    const handle = await registry.register({
      service: 'web',
      address: '127.0.0.1',
      port: 8080,
      tags: ['blue'],
      meta: {version: '1', [PRIVATE_PORT_META]: '80'},
      source,
    })
    const path = `${base}/web/127.0.0.1:8080`
    const payload = JSON.parse((await getData(raw, path)).toString('utf8')) as Record<string, unknown>
    expect(payload).toEqual({
      Name: 'web',
      IP: '127.0.0.1',
      PublicPort: 8080,
      PrivatePort: 80,
      ContainerID: 'c0ffee',
      Tags: ['blue'],
      Attrs: {version: '1', [PRIVATE_PORT_META]: '80'},
      id: 'web:127.0.0.1:8080',
      service: 'web',
      address: '127.0.0.1',
      port: 8080,
      tags: ['blue'],
      meta: {version: '1', [PRIVATE_PORT_META]: '80'},
      health: 'passing',
      source,
    })
    expect(await ownerOf(raw, path)).toBe(sessionOf(registry).id.toString('hex'))

    await handle.setHealth('critical')
    expect(JSON.parse((await getData(raw, path)).toString('utf8'))).toMatchObject({health: 'critical', IP: '127.0.0.1'})
    await handle.close()
    expect(await exists(raw, path)).toBe(false)
    // like registrator, the service's znode goes with its last instance
    expect(await exists(raw, `${base}/web`)).toBe(false)
  })

  it('reads what registrator wrote, and skips a znode that is not JSON with one warning', async () => {
    const {registry, logs} = open()
    const dir = `${base}/legacy`
    await mkdirp(raw, dir)
    // registrator's ZnodeBody; Go writes nil Tags and Attrs as null
    await create(
      raw,
      `${dir}/10.0.0.5:32768`,
      '{"Name":"legacy","IP":"10.0.0.5","PublicPort":32768,"PrivatePort":80,"ContainerID":"4f1d2a","Tags":null,"Attrs":null}',
    )
    await create(
      raw,
      `${dir}/10.0.0.6:32769`,
      '{"Name":"legacy","IP":"10.0.0.6","PublicPort":32769,"PrivatePort":80,"ContainerID":"","Tags":["x"],"Attrs":{"SERVICE_REGION":"eu"}}',
    )
    await create(raw, `${dir}/10.0.0.7:1`, 'not json at all')

    for (let i = 0; i < 3; i++) {
      expect(await registry.listInstances('legacy')).toEqual([
        {
          service: 'legacy',
          id: 'legacy:10.0.0.5:32768',
          address: '10.0.0.5',
          port: 32_768,
          tags: [],
          meta: {},
          health: 'passing',
          source: {containerId: '4f1d2a', containerName: '', image: '', host: ''},
        },
        {
          service: 'legacy',
          id: 'legacy:10.0.0.6:32769',
          address: '10.0.0.6',
          port: 32_769,
          tags: ['x'],
          meta: {SERVICE_REGION: 'eu'},
          health: 'passing',
        },
      ])
    }

    expect((await registry.listServices()).find((s) => s.name === 'legacy')).toEqual({
      name: 'legacy',
      instances: 2,
      passing: 2,
    })
    const watch = collect(registry.watch('legacy'))
    await eventually(async () => watch.events.find((e) => e.type === 'snapshot'), 5000)
    expect(logs.filter((l) => l.includes(`${dir}/10.0.0.7:1`))).toEqual([
      `zookeeper: skipping ${dir}/10.0.0.7:1: its payload is not JSON`,
    ])

    // deregister finds a registrator znode by its derived id, or by its name
    expect(await registry.deregister('legacy', 'legacy:10.0.0.5:32768')).toBe(true)
    expect(await registry.deregister('legacy', '10.0.0.6:32769')).toBe(true)
    expect(await registry.deregister('legacy', '10.0.0.6:32769')).toBe(false)
    expect(await registry.listInstances('legacy')).toEqual([])
    await eventually(async () => watch.events.filter((e) => e.type === 'removed').length === 2, 5000)
    await registry.close()
    await watch.done
  })

  it('answers empty lists for a base or service that does not exist', async () => {
    const registry = new ZooKeeperRegistry(
      {kind: 'zk', hosts: hosts.map((h) => hostPort(h)), base: `${base}/nothing/here`},
      withDefaults(),
    )
    opened.push(registry)
    await registry.ping()
    expect(await registry.listServices()).toEqual([])
    expect(await registry.listInstances('none')).toEqual([])
    expect(await registry.deregister('none', 'x')).toBe(false)
  })

  it('replaces a stale znode of the same instance, and refuses one of another instance', async () => {
    const first = open().registry
    const second = open().registry
    const path = `${base}/stale/127.0.0.1:7000`
    await first.register({service: 'stale', address: '127.0.0.1', port: 7000})
    const before = await ownerOf(raw, path)
    // a restarted process registers again while its old session still holds the znode
    await second.register({service: 'stale', address: '127.0.0.1', port: 7000})
    const after = await ownerOf(raw, path)
    expect(after).not.toBe(before)
    expect(after).toBe(sessionOf(second).id.toString('hex'))
    await expect(first.register({service: 'stale', id: 'other', address: '127.0.0.1', port: 7000})).rejects.toThrow(
      UserError,
    )
    await second.close()
    await eventually(async () => !(await exists(raw, path)), 3000)
  })

  it('watches a service before its znode exists, and after it is removed and made again', async () => {
    const {registry} = open()
    const watcher = open().registry
    const service = collect(watcher.watch('later'))
    const all = collect(watcher.watch())
    await eventually(async () => service.events.some((e) => e.type === 'snapshot'), 5000)
    await eventually(async () => all.events.some((e) => e.type === 'snapshot'), 5000)

    for (let round = 0; round < 2; round++) {
      const handle = await registry.register({service: 'later', address: '127.0.0.1', port: 7100 + round})
      await eventually(
        async () => service.events.some((e) => e.type === 'added' && e.instance.port === 7100 + round),
        5000,
      )
      await handle.setHealth('warning')
      await eventually(
        async () => service.events.some((e) => e.type === 'changed' && e.instance.port === 7100 + round),
        5000,
      )
      await handle.close()
      await eventually(
        async () => service.events.some((e) => e.type === 'removed' && e.instance.port === 7100 + round),
        5000,
      )
    }

    await eventually(async () => all.events.filter((e) => e.type === 'removed').length >= 2, 5000)
    const expected = [
      'snapshot',
      'added 7100',
      'changed 7100',
      'removed 7100',
      'added 7101',
      'changed 7101',
      'removed 7101',
    ]
    expect(changes(service.events)).toEqual(expected)
    expect(changes(all.events).filter((c) => c === 'snapshot' || / 710[01]$/.test(c))).toEqual(expected)
    await watcher.close()
    await Promise.all([service.done, all.done])
  })

  it('re-creates its znodes and re-arms its watches on a new session when the session expires', async () => {
    const proxies = await Promise.all(hosts.map((h) => new TcpProxy(h).start()))
    try {
      const {registry, logs} = open(proxies.map((p) => p.address))
      const states: Array<{state: RegistrationState; detail: string; at: number}> = []
      const handle = await registry.register(
        {service: 'expiring', id: 'e1', address: '127.0.0.1', port: 7200},
        {ttlMs: 4000, onStateChange: (state, detail) => states.push({state, detail, at: Date.now()})},
      )
      const watch = collect(registry.watch('expiring'))
      await eventually(async () => watch.events.some((e) => e.type === 'snapshot'), 5000)
      const path = `${base}/expiring/127.0.0.1:7200`
      const oldSession = sessionOf(registry)

      // while the registry cannot reach the ensemble, another client takes its session over and closes it:
      // the server ends the session as it does on expiry, and the registry learns it when it reconnects
      for (const p of proxies) p.cut()
      const thief = await rawClient({sessionId: oldSession.id, sessionPassword: oldSession.password})
      await new Promise<void>((resolve) => {
        thief.once('disconnected', resolve)
        thief.close()
      })
      await eventually(async () => !(await exists(raw, path)), 5000)
      const healedAt = Date.now()
      for (const p of proxies) p.heal()

      await eventually(async () => states.some((s) => s.state === 'restored'), 15_000)
      const restoredAfter = states.find((s) => s.state === 'restored')!.at - healedAt
      expect(states.map((s) => s.state)).toEqual(['lost', 'restored'])
      expect(states[0]!.detail).toMatch(/session 0x[\da-f]+ expired/)
      const newOwner = await ownerOf(raw, path)
      expect(newOwner).not.toBe('')
      expect(newOwner).not.toBe(oldSession.id.toString('hex'))
      expect(logs.some((l) => /session 0x[\da-f]+ expired; opening a new session/.test(l))).toBe(true)

      // the watch saw the session go and come back, and follows changes made on the new session
      const status = (state: string, detail: RegExp) => (e: WatchEvent) =>
        e.type === 'status' && e.state === state && detail.test(e.detail)
      await eventually(async () => watch.events.some(status('connected', /new session/)), 5000)
      expect(watch.events.some(status('reconnecting', /lost member/))).toBe(true)
      expect(watch.events.some(status('session-lost', /expired/))).toBe(true)
      await handle.setHealth('critical')
      await eventually(
        async () => watch.events.some((e) => e.type === 'changed' && e.instance.health === 'critical'),
        5000,
      )
      await registry.register({service: 'expiring', id: 'e2', address: '127.0.0.1', port: 7201})
      await eventually(async () => watch.events.some((e) => e.type === 'added' && e.instance.id === 'e2'), 5000)
      expect(ids(await registry.listInstances('expiring'))).toEqual(['e1', 'e2'])
      // e1 was never reported gone: it was back before the watch re-read the service
      expect(watch.events.filter((e) => e.type === 'removed')).toEqual([])
      console.log(`session expiry: re-created ${restoredAfter} ms after the registry could reach the ensemble again`)
      await registry.close()
      await watch.done
    } finally {
      await Promise.all(proxies.map((p) => p.stop()))
    }
  })

  it('fails over to another member and keeps its session, znodes and watches', async () => {
    const proxies = await Promise.all(
      [...hosts, ...hosts].slice(0, Math.max(2, hosts.length)).map((h) => new TcpProxy(h).start()),
    )
    try {
      const {registry} = open(proxies.map((p) => p.address))
      const states: RegistrationState[] = []
      await registry.register(
        {service: 'failover', address: '127.0.0.1', port: 7300},
        {ttlMs: 4000, onStateChange: (state) => states.push(state)},
      )
      const watch = collect(registry.watch('failover'))
      await eventually(async () => watch.events.some((e) => e.type === 'snapshot'), 5000)
      const owner = await ownerOf(raw, `${base}/failover/127.0.0.1:7300`)
      const first = watch.events.find((e) => e.type === 'status' && e.state === 'connected')
      const member = first?.type === 'status' ? first.detail.replace('member ', '') : undefined
      const used = proxies.find((p) => p.address === member)
      expect(used).toBeDefined()

      const cutAt = Date.now()
      used!.cut()
      await eventually(
        async () =>
          watch.events.some((e) => e.type === 'status' && e.state === 'connected' && e.detail !== `member ${member}`),
        10_000,
      )
      const failedOverIn = Date.now() - cutAt
      expect(watch.events.some((e) => e.type === 'status' && e.state === 'reconnecting')).toBe(true)
      expect(await ownerOf(raw, `${base}/failover/127.0.0.1:7300`)).toBe(owner)
      expect(states).toEqual([])
      // the watches came along: a change made now is seen
      await registry.register({service: 'failover', address: '127.0.0.1', port: 7301})
      await eventually(async () => watch.events.some((e) => e.type === 'added' && e.instance.port === 7301), 5000)
      expect(watch.events.filter((e) => e.type === 'removed')).toEqual([])
      console.log(`fail-over: connected through another member ${failedOverIn} ms after the first was cut`)
      await registry.close()
      await watch.done
    } finally {
      await Promise.all(proxies.map((p) => p.stop()))
    }
  })

  it('reports a partition longer than the session timeout as lost, and restores the znode when it heals', async () => {
    const proxies = await Promise.all(hosts.map((h) => new TcpProxy(h).start()))
    try {
      const {registry, logs} = open(proxies.map((p) => p.address))
      const states: Array<{state: RegistrationState; at: number}> = []
      await registry.register(
        {service: 'partition', address: '127.0.0.1', port: 7400},
        {ttlMs: 2000, onStateChange: (state) => states.push({state, at: Date.now()})},
      )
      const path = `${base}/partition/127.0.0.1:7400`
      const stalledAt = Date.now()
      for (const p of proxies) p.stall()
      // the ensemble ends the session on its side
      await eventually(async () => !(await exists(raw, path)), 10_000)
      await eventually(async () => states.some((s) => s.state === 'lost'), 10_000)
      const lostAfter = states[0]!.at - stalledAt
      expect(logs.some((l) => /has not answered for \d+ ms; trying another member/.test(l))).toBe(true)

      const healedAt = Date.now()
      for (const p of proxies) p.heal()
      await eventually(async () => states.some((s) => s.state === 'restored'), 15_000)
      const restoredAfter = states.at(-1)!.at - healedAt
      expect(states.map((s) => s.state)).toEqual(['lost', 'restored'])
      expect(await exists(raw, path)).toBe(true)
      console.log(
        `partition: lost reported ${lostAfter} ms after it began; re-created ${restoredAfter} ms after it healed`,
      )
      await registry.close()
    } finally {
      await Promise.all(proxies.map((p) => p.stop()))
    }
  })

  it('reports an unreachable ensemble within connectTimeoutMs, and lets go of everything on close', async () => {
    const proxy = await new TcpProxy(hosts[0]!).start()
    proxy.cut()
    const registry = new ZooKeeperRegistry(
      {kind: 'zk', hosts: [hostPort(proxy.address)], base},
      withDefaults({connectTimeoutMs: 1000}),
    )
    const started = Date.now()
    await expect(registry.listServices()).rejects.toThrow(
      `cannot reach zookeeper at ${proxy.address} (no answer after 1s)`,
    )
    expect(Date.now() - started).toBeLessThan(2000)
    const info = await registry.cluster()
    expect(info.members).toEqual([{name: proxy.address, address: proxy.address, role: 'unknown', reachable: false}])
    await registry.close()
    await proxy.stop()
  })

  // no other test may stop a member while this one expects every member up
  it('describes the ensemble from srvr', () =>
    withClusterLock('zk', async () => {
      const {registry} = open()
      const info = await registry.cluster()
      expect(info.members.map((m) => m.address)).toEqual(hosts)
      expect(info.members.every((m) => m.reachable)).toBe(true)
      if (hosts.length === 1) {
        expect(info.members[0]!.role).toBe('standalone')
      } else {
        expect(info.members.filter((m) => m.role === 'leader')).toHaveLength(1)
        expect(info.leader).toBe(info.members.find((m) => m.role === 'leader')!.address)
      }
    }))
})
