import {Etcd3} from 'etcd3'
import {spawn} from 'node:child_process'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {BackendUnavailableError} from '../../src/lib/errors.js'
import {EtcdRegistry} from '../../src/lib/registry/etcd.js'
import {type BackendOptions, withDefaults} from '../../src/lib/registry/options.js'
import {parseBackend} from '../../src/lib/registry/spec.js'
import type {RegistrationState, WatchEvent} from '../../src/lib/registry/types.js'
import {eventually, ROOT} from '../helpers/cli.js'
import {withClusterLock} from '../helpers/clusters.js'
import {hostPort, TcpProxy} from '../helpers/tcp-proxy.js'

// etcd-specific behaviour the shared contract suite does not cover: the key layout and its lease, foreign values,
// lease loss, watch resumption (also past a compaction), bounded answers from an unreachable cluster, and exit.
const uri = process.env.SVC_TEST_ETCD ?? 'etcd://127.0.0.1:23790/svc-test'
const spec = parseBackend(uri)
if (spec.kind !== 'etcd') throw new Error(`SVC_TEST_ETCD must be an etcd:// URI, not ${uri}`)
const hosts = spec.hosts.map((h) => `${h.host}:${h.port}`)
const prefix = `${spec.prefix}/etcd-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`

const opened: EtcdRegistry[] = []

function open(
  connect: string[] = hosts,
  options: Partial<BackendOptions> = {},
): {registry: EtcdRegistry; logs: string[]} {
  const logs: string[] = []
  const registry = new EtcdRegistry(
    {kind: 'etcd', hosts: connect.map((h) => hostPort(h)), prefix},
    withDefaults({...options, log: (m) => logs.push(m)}),
  )
  opened.push(registry)
  return {registry, logs}
}

/** Collects a watch stream in the background. */
function collect(stream: AsyncIterable<WatchEvent>): {events: WatchEvent[]; done: Promise<void>} {
  const events: WatchEvent[] = []
  const done = (async () => {
    for await (const event of stream) events.push(event)
  })()
  return {events, done}
}

const changes = (events: WatchEvent[]): string[] =>
  events.flatMap((e) => {
    if (e.type === 'status') return []
    if (e.type === 'snapshot') return [`snapshot ${e.instances.map((i) => i.id).join(',')}`]
    return [`${e.type} ${e.instance.id}`]
  })

async function withProxies<T>(fn: (proxies: TcpProxy[]) => Promise<T>): Promise<T> {
  const proxies = await Promise.all(hosts.map((h) => new TcpProxy(h).start()))
  try {
    return await fn(proxies)
  } finally {
    await Promise.all(proxies.map((p) => p.stop()))
  }
}

describe(`etcd registry (${uri})`, () => {
  let raw: Etcd3

  beforeAll(() => {
    raw = new Etcd3({hosts: hosts.map((h) => `http://${h}`)})
  })

  afterAll(async () => {
    await Promise.all(opened.map((r) => r.close()))
    await raw?.delete().prefix(`${prefix}/`)
    raw?.close()
  })

  it('puts JSON at <prefix>/<service>/<id> on a lease with the TTL asked for, and revokes it on close', async () => {
    const {registry} = open()
    const source = {containerId: 'c0ffee', containerName: 'web-1', image: 'web:1', host: 'h1'}
    const handle = await registry.register(
      {service: 'web', address: '127.0.0.1', port: 8080, tags: ['blue'], meta: {version: '1'}, source},
      {ttlMs: 4500},
    )
    const key = `${prefix}/web/web:127.0.0.1:8080`
    const [kv] = (await raw.get(key).exec()).kvs
    expect(JSON.parse(kv!.value.toString())).toEqual({
      service: 'web',
      id: 'web:127.0.0.1:8080',
      address: '127.0.0.1',
      port: 8080,
      tags: ['blue'],
      meta: {version: '1'},
      health: 'passing',
      source,
    })
    const lease = kv!.lease
    expect(lease).not.toBe('0')
    const ttl = await raw.leaseClient.leaseTimeToLive({ID: lease, keys: true})
    expect(ttl.grantedTTL).toBe('5')
    expect(ttl.keys.map(String)).toEqual([key])

    await handle.setHealth('critical')
    const [updated] = (await raw.get(key).exec()).kvs
    expect(JSON.parse(updated!.value.toString())).toMatchObject({health: 'critical', port: 8080})
    expect(updated!.lease).toBe(lease)

    // kept alive past its TTL
    await new Promise((resolve) => {
      setTimeout(resolve, 6000)
    })
    expect(await raw.get(key).string()).not.toBeNull()

    await handle.close()
    expect(await raw.get(key).string()).toBeNull()
    expect((await raw.leaseClient.leaseTimeToLive({ID: lease})).TTL).toBe('-1')
  })

  it('uses a TTL of at least 2 s, and leaves the key to expire on close without deregistering', async () => {
    const {registry} = open()
    const handle = await registry.register({service: 'brief', address: '127.0.0.1', port: 8081}, {ttlMs: 300})
    const key = `${prefix}/brief/brief:127.0.0.1:8081`
    const [kv] = (await raw.get(key).exec()).kvs
    expect((await raw.leaseClient.leaseTimeToLive({ID: kv!.lease})).grantedTTL).toBe('2')
    const closedAt = Date.now()
    await handle.close({deregister: false})
    expect(await raw.get(key).string()).not.toBeNull()
    await eventually(async () => (await raw.get(key).string()) === null, 5000)
    expect(Date.now() - closedAt).toBeLessThan(3500)
    expect(await registry.deregister('brief', 'brief:127.0.0.1:8081')).toBe(false)
  })

  it('refreshes the lease every refreshMs when that is shorter than etcd3 keeps it alive (a third of the TTL)', async () => {
    const {registry} = open()
    const ttlLeft = async (handle: {instance: {service: string; id: string}}): Promise<number> => {
      const [kv] = (await raw.get(`${prefix}/${handle.instance.service}/${handle.instance.id}`).exec()).kvs
      return Number((await raw.leaseClient.leaseTimeToLive({ID: kv!.lease})).TTL)
    }

    const often = await registry.register(
      {service: 'often', address: '127.0.0.1', port: 8082},
      {ttlMs: 9000, refreshMs: 300},
    )
    const usual = await registry.register({service: 'usual', address: '127.0.0.1', port: 8083}, {ttlMs: 9000})
    // etcd3's own keep-alive runs every 3 s here: in between, the usual lease runs down while ours stays near 9 s
    const lowest = {often: 9, usual: 9}
    const until = Date.now() + 3500
    while (Date.now() < until) {
      lowest.often = Math.min(lowest.often, await ttlLeft(often))
      lowest.usual = Math.min(lowest.usual, await ttlLeft(usual))
      await new Promise((resolve) => {
        setTimeout(resolve, 100)
      })
    }

    expect(lowest.often).toBeGreaterThanOrEqual(8)
    expect(lowest.usual).toBeLessThanOrEqual(7)
    await Promise.all([often.close(), usual.close()])
  })

  it('skips values that are not instances with one warning each, and reads hand-written ones', async () => {
    const {registry, logs} = open()
    await raw.put(`${prefix}/foreign/broken`).value('not json at all')
    await raw.put(`${prefix}/foreign/no-address`).value('{"port": 80}')
    await raw.put(`${prefix}/foreign/by-hand`).value('{"address": "10.0.0.5", "port": 8000}')
    await raw.put(`${prefix}/stray`).value('{}')

    for (let i = 0; i < 3; i++) {
      expect(await registry.listInstances('foreign')).toEqual([
        {service: 'foreign', id: 'by-hand', address: '10.0.0.5', port: 8000, tags: [], meta: {}, health: 'unknown'},
      ])
    }

    expect((await registry.listServices()).find((s) => s.name === 'foreign')).toEqual({
      name: 'foreign',
      instances: 1,
      passing: 0,
    })
    const watch = collect(registry.watch())
    await eventually(async () => watch.events.some((e) => e.type === 'snapshot'), 5000)
    // a bad value written while watching is skipped too, and a valid one replacing it is seen
    await raw.put(`${prefix}/foreign/later`).value('[1, 2]')
    await raw.put(`${prefix}/foreign/later`).value('{"address": "10.0.0.6", "port": 8001}')
    await eventually(async () => watch.events.some((e) => e.type === 'added' && e.instance.id === 'later'), 5000)

    const about = (key: string): string[] => logs.filter((l) => l.startsWith(`etcd: skipping ${prefix}/${key}:`))
    expect(about('foreign/broken')).toEqual([`etcd: skipping ${prefix}/foreign/broken: the value is not JSON`])
    expect(about('foreign/no-address')).toEqual([
      `etcd: skipping ${prefix}/foreign/no-address: the value has no address`,
    ])
    expect(about('stray')).toEqual([`etcd: skipping ${prefix}/stray: the key is not <prefix>/<service>/<id>`])
    expect(about('foreign/later')).toEqual([`etcd: skipping ${prefix}/foreign/later: the value is not a JSON object`])
    await registry.close()
    await watch.done
    await raw.delete().prefix(`${prefix}/foreign/`)
    await raw.delete().key(`${prefix}/stray`)
  })

  it('grants a new lease and puts the key again when its lease is revoked, reporting lost then restored', async () => {
    const {registry} = open()
    const states: Array<{state: RegistrationState; detail: string}> = []
    const handle = await registry.register(
      {service: 'revoked', id: 'r1', address: '127.0.0.1', port: 8100},
      {ttlMs: 3000, onStateChange: (state, detail) => states.push({state, detail})},
    )
    const watch = collect(registry.watch('revoked'))
    await eventually(async () => watch.events.some((e) => e.type === 'snapshot'), 5000)
    const key = `${prefix}/revoked/r1`
    const [before] = (await raw.get(key).exec()).kvs
    const revokedAt = Date.now()
    await raw.leaseClient.leaseRevoke({ID: before!.lease})
    expect(await raw.get(key).string()).toBeNull()

    // keep-alives go out every TTL/3, and the first one after the revocation learns of it
    const after = await eventually(async () => (await raw.get(key).exec()).kvs[0], 5000)
    expect(Date.now() - revokedAt).toBeLessThan(3000)
    expect(after.lease).not.toBe(before!.lease)
    expect(JSON.parse(after.value.toString())).toMatchObject({id: 'r1', port: 8100})
    expect(states.map((s) => s.state)).toEqual(['lost', 'restored'])
    expect(states[0]!.detail).toMatch(/^lease [\da-f]+ of .*\/revoked\/r1 expired or was revoked/)
    await eventually(async () => changes(watch.events).includes('added r1'), 5000)
    expect(changes(watch.events)).toEqual(['snapshot r1', 'removed r1', 'added r1'])

    // the new lease is kept alive and revoked on close like the first
    await handle.setHealth('warning')
    expect((await raw.get(key).exec()).kvs[0]!.lease).toBe(after.lease)
    await handle.close()
    expect(await raw.get(key).string()).toBeNull()
    await registry.close()
    await watch.done
  })

  it('restores a registration whose lease expired while the cluster was out of reach', async () => {
    await withProxies(async (proxies) => {
      const {registry, logs} = open(
        proxies.map((p) => p.address),
        {requestTimeoutMs: 2000},
      )
      const states: RegistrationState[] = []
      await registry.register(
        {service: 'partitioned', id: 'p1', address: '127.0.0.1', port: 8200},
        {ttlMs: 2000, onStateChange: (state) => states.push(state)},
      )
      const key = `${prefix}/partitioned/p1`
      for (const p of proxies) p.stall()
      // etcd expires the lease after its TTL; the registry gives it up after two TTLs without an answer
      await eventually(async () => (await raw.get(key).string()) === null, 6000)
      await eventually(async () => states.includes('lost'), 8000)
      const healedAt = Date.now()
      for (const p of proxies) p.heal()
      await eventually(async () => states.includes('restored'), 10_000)
      expect(Date.now() - healedAt).toBeLessThan(5000)
      expect(states[0]).toBe('lost')
      expect(states.at(-1)).toBe('restored')
      expect(states.filter((s) => s !== 'lost' && s !== 'restored' && s !== 'error')).toEqual([])
      expect(await raw.get(key).string()).not.toBeNull()
      expect(logs.some((l) => l.includes('keep-alive of lease'))).toBe(true)
      await registry.close()
      expect(await raw.get(key).string()).toBeNull()
    })
  })

  it('resumes a watch after its connection is cut, without losing what changed meanwhile', async () => {
    await withProxies(async (proxies) => {
      const {registry} = open(proxies.map((p) => p.address))
      await raw.put(`${prefix}/resume/a`).value('{"address": "10.0.1.1", "port": 1}')
      await raw.put(`${prefix}/resume/b`).value('{"address": "10.0.1.2", "port": 2}')
      const watch = collect(registry.watch('resume'))
      await eventually(async () => watch.events.some((e) => e.type === 'snapshot'), 5000)

      for (const p of proxies) p.cut()
      await eventually(async () => watch.events.some((e) => e.type === 'status' && e.state === 'reconnecting'), 5000)
      await raw.delete().key(`${prefix}/resume/a`)
      await raw.put(`${prefix}/resume/b`).value('{"address": "10.0.1.2", "port": 2, "health": "critical"}')
      await raw.put(`${prefix}/resume/c`).value('{"address": "10.0.1.3", "port": 3}')
      for (const p of proxies) p.heal()

      await eventually(async () => watch.events.some((e) => e.type === 'status' && e.state === 'connected'), 10_000)
      await eventually(async () => changes(watch.events).length >= 4, 5000)
      expect(changes(watch.events)).toEqual(['snapshot a,b', 'removed a', 'changed b', 'added c'])
      // and it keeps following
      await raw.delete().key(`${prefix}/resume/c`)
      await eventually(async () => changes(watch.events).includes('removed c'), 5000)
      expect(changes(watch.events)).toHaveLength(5)
      await registry.close()
      await watch.done
    })
  })

  it('reads the range again when compaction removed the history a resumed watch needs', async () => {
    await withProxies(async (proxies) => {
      const {registry, logs} = open(proxies.map((p) => p.address))
      await raw.put(`${prefix}/compacted/a`).value('{"address": "10.0.2.1", "port": 1}')
      const watch = collect(registry.watch('compacted'))
      await eventually(async () => watch.events.some((e) => e.type === 'snapshot'), 5000)

      for (const p of proxies) p.cut()
      await eventually(async () => watch.events.some((e) => e.type === 'status' && e.state === 'reconnecting'), 5000)
      await raw.put(`${prefix}/compacted/b`).value('{"address": "10.0.2.2", "port": 2}')
      await raw.delete().key(`${prefix}/compacted/a`)
      const {header} = await raw.put(`${prefix}/compacted/c`).value('{"address": "10.0.2.3", "port": 3}').exec()
      await raw.kv.compact({revision: header.revision, physical: true})
      for (const p of proxies) p.heal()

      await eventually(async () => changes(watch.events).length >= 4, 10_000)
      expect(changes(watch.events)).toEqual(['snapshot a', 'removed a', 'added b', 'added c'])
      // etcd confirms the resumed watch, then cancels it for compaction: the read after the reconnect may come first
      await eventually(
        async () => logs.some((l) => l.startsWith(`etcd: watch on ${prefix}/compacted/ was cancelled`)),
        5000,
      )
      await raw.delete().key(`${prefix}/compacted/c`)
      await eventually(async () => changes(watch.events).includes('removed c'), 5000)
      await registry.close()
      await watch.done
    })
  })

  it('answers BackendUnavailableError within the connect timeout when no member answers', async () => {
    await withProxies(async (proxies) => {
      for (const p of proxies) p.stall()
      const {registry} = open(
        proxies.map((p) => p.address),
        {connectTimeoutMs: 1500},
      )
      const started = Date.now()
      const error = await registry.ping().catch((error_: unknown) => error_)
      expect(error).toBeInstanceOf(BackendUnavailableError)
      expect((error as Error).message).toBe(
        `cannot reach etcd at ${proxies.map((p) => p.address).join(',')} (no answer after 1.5s)`,
      )
      expect(Date.now() - started).toBeGreaterThanOrEqual(1400)
      expect(Date.now() - started).toBeLessThan(2500)
      const watchError = await collect(registry.watch()).done.catch((error_: unknown) => error_)
      expect(watchError).toBeInstanceOf(BackendUnavailableError)
    })

    // refused connections fail at once
    const {registry} = open(['127.0.0.1:1', '127.0.0.1:2'])
    const started = Date.now()
    await expect(registry.listServices()).rejects.toThrow(/cannot reach etcd at 127.0.0.1:1,127.0.0.1:2 \(connect/)
    expect(Date.now() - started).toBeLessThan(1500)
  })

  // no other test may stop a member while this one expects every member up
  it('describes the cluster: every member, its client address, and the leader', () =>
    withClusterLock('etcd', async () => {
      const {registry} = open()
      const info = await registry.cluster()
      expect(info.backend).toBe('etcd')
      expect(info.members.map((m) => m.address).sort()).toEqual([...hosts].sort())
      expect(info.members.every((m) => m.reachable)).toBe(true)
      const leaders = info.members.filter((m) => m.role === 'leader')
      expect(leaders).toHaveLength(1)
      expect(info.leader).toBe(leaders[0]!.address)
      if (hosts.length > 1) expect(info.members.filter((m) => m.role === 'follower')).toHaveLength(hosts.length - 1)
    }))

  it('lets the process exit after close, with registrations and watches open', async () => {
    const script = `
      import {EtcdRegistry} from './src/lib/registry/etcd.ts'
      import {withDefaults} from './src/lib/registry/options.ts'
      const registry = new EtcdRegistry(${JSON.stringify({kind: 'etcd', hosts: hosts.map((h) => hostPort(h)), prefix})}, withDefaults())
      await registry.register({service: 'exiting', address: '127.0.0.1', port: 8300})
      const watch = registry.watch()[Symbol.asyncIterator]()
      await watch.next()
      await registry.close()
      console.log('closed')
    `
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {cwd: ROOT})
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString()
    })
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString()
    })
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL')
        reject(new Error(`the process did not exit within 15 s after close: ${output}`))
      }, 15_000)
      child.on('exit', (exitCode) => {
        clearTimeout(timer)
        resolve(exitCode)
      })
    })
    expect(output.trim()).toBe('closed')
    expect(code).toBe(0)
    expect(await raw.getAll().prefix(`${prefix}/exiting/`).keys()).toEqual([])
  })
})
