import type {Etcd3} from 'etcd3'
import {spawn} from 'node:child_process'
import {hostname} from 'node:os'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {BackendUnavailableError} from '../../src/lib/errors.js'
import type {RegistrationState, Registry} from '../../src/lib/registry/types.js'
import {eventually, ROOT} from '../helpers/cli.js'
import {withClusterLock} from '../helpers/clusters.js'
import {changes, collect, etcdTarget, openEtcd, rawClient, withProxies} from '../helpers/etcd.js'
import {hostPort} from '../helpers/tcp-proxy.js'

// etcd-specific behaviour the shared contract suite does not cover: the key layout, its owner and its lease, foreign
// values, lease loss, bounded answers from an unreachable cluster, and exit. Fail-over: etcd-failover.integration.
const {hosts, prefix} = etcdTarget('etcd')
const opened: Registry[] = []
const open = (connect: string[] = hosts, options = {}): Promise<{registry: Registry; logs: string[]}> =>
  openEtcd(connect, prefix, opened, options)

/** An instance another tool wrote: svc's defaults fill in what it left out. */
const readable = (id: string, address: string, port: number): object => ({
  service: 'foreign',
  id,
  address,
  port,
  tags: [],
  meta: {},
  health: 'unknown',
})

describe(`etcd registry (${hosts.join(',')}${prefix})`, () => {
  let raw: Etcd3

  beforeAll(() => {
    raw = rawClient(hosts)
  })

  afterAll(async () => {
    await Promise.all(opened.map((r) => r.close()))
    await raw?.delete().prefix(`${prefix}/`)
    raw?.close()
  })

  it('puts JSON naming its owner at <prefix>/<service>/<id> on a lease with the TTL asked for, revoked on close', async () => {
    const {registry} = await open()
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
      owner: {host: hostname(), pid: process.pid, nonce: expect.stringMatching(/^[\da-f]{16}$/)},
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

  it('refuses a TTL below 2 s naming the floor, and leaves the key to expire on close without deregistering', async () => {
    const {registry} = await open()
    const instance = {service: 'brief', address: '127.0.0.1', port: 8081}
    await expect(registry.register(instance, {ttlMs: 300})).rejects.toThrow(/below etcd's floor of 2s/)
    expect(await raw.getAll().prefix(`${prefix}/brief/`).keys()).toEqual([])
    const handle = await registry.register(instance, {ttlMs: 2000})
    const key = `${prefix}/brief/brief:127.0.0.1:8081`
    const [kv] = (await raw.get(key).exec()).kvs
    expect((await raw.leaseClient.leaseTimeToLive({ID: kv!.lease})).grantedTTL).toBe('2')
    const closedAt = Date.now()
    await handle.close({deregister: false})
    expect(await raw.get(key).string()).not.toBeNull()
    await eventually(async () => (await raw.get(key).string()) === null, 5000)
    expect(Date.now() - closedAt).toBeLessThan(3500)
    expect((await registry.deregister('brief', 'brief:127.0.0.1:8081')).removed).toBe(false)
  })

  it('refreshes the lease every refreshMs when that is shorter than etcd3 keeps it alive (a third of the TTL)', async () => {
    // each registry keeps one lease for all its keys: the two refresh periods need two registries
    const {registry} = await open()
    const {registry: other} = await open()
    const ttlLeft = async (handle: {instance: {service: string; id: string}}): Promise<number> => {
      const [kv] = (await raw.get(`${prefix}/${handle.instance.service}/${handle.instance.id}`).exec()).kvs
      return Number((await raw.leaseClient.leaseTimeToLive({ID: kv!.lease})).TTL)
    }

    const often = await registry.register(
      {service: 'often', address: '127.0.0.1', port: 8082},
      {ttlMs: 9000, refreshMs: 300},
    )
    const usual = await other.register({service: 'usual', address: '127.0.0.1', port: 8083}, {ttlMs: 9000})
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

  it('skips values that are not instances with one warning each, reads hand-written and registrator ones, and leaves them', async () => {
    const {registry, logs} = await open()
    const foreign = {
      broken: 'not json at all',
      'no-address': '{"port": 80}',
      'by-hand': '{"address": "10.0.0.5", "port": 8000}',
      // registrator's etcd backend wrote <ip>:<port> under <prefix>/<service>/<host>:<container>:<port>
      'h1:c1:80': '10.0.0.7:8002',
    }
    for (const [id, value] of Object.entries(foreign)) await raw.put(`${prefix}/foreign/${id}`).value(value)
    await raw.put(`${prefix}/stray`).value('{}')

    for (let i = 0; i < 3; i++) {
      expect(await registry.listInstances('foreign')).toEqual([
        readable('by-hand', '10.0.0.5', 8000),
        readable('h1:c1:80', '10.0.0.7', 8002),
      ])
    }

    expect((await registry.listServices()).find((s) => s.name === 'foreign')).toEqual({
      name: 'foreign',
      instances: 2,
      passing: 0,
    })
    const watch = collect(registry.watch())
    await eventually(async () => watch.events.some((e) => e.type === 'snapshot'), 5000)
    // a bad value written while watching is skipped too, and a valid one replacing it is seen
    await raw.put(`${prefix}/foreign/later`).value('[1, 2]')
    await raw.put(`${prefix}/foreign/later`).value('{"address": "10.0.0.6", "port": 8001}')
    await eventually(async () => watch.events.some((e) => e.type === 'added' && e.instance.id === 'later'), 5000)

    // one warning per record, naming its key and why
    const about = (key: string): string[] => logs.filter((l) => /skipping/.test(l) && l.includes(`${prefix}/${key}`))
    const warned = (key: string, reason: string): void => {
      expect(about(key)).toHaveLength(1)
      expect(about(key)[0]).toMatch(new RegExp(`${key}"?: ${reason}$`))
    }

    warned('foreign/broken', 'it is not JSON')
    warned('foreign/no-address', 'it has no address')
    warned('stray', 'the key is not <prefix>/<service>/<id>')
    warned('foreign/later', 'it is not a JSON object')
    await registry.close()
    await watch.done
    // read, never touched
    for (const [id, value] of Object.entries(foreign))
      expect(await raw.get(`${prefix}/foreign/${id}`).string()).toBe(value)
    await raw.delete().prefix(`${prefix}/foreign/`)
    await raw.delete().key(`${prefix}/stray`)
  })

  it('grants a new lease and puts the key again when its lease is revoked, reporting lost then restored', async () => {
    const {registry} = await open()
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
    expect(states[0]!.detail).toMatch(/expired/)
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

  it('answers BackendUnavailableError within the connect timeout when no member answers', async () => {
    await withProxies(hosts, async (proxies) => {
      for (const p of proxies) p.stall()
      const {registry} = await open(
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

    // refused connections fail at once, and say so
    const {registry} = await open(['127.0.0.1:1', '127.0.0.1:2'])
    const started = Date.now()
    await expect(registry.listServices()).rejects.toThrow(
      'cannot reach etcd at 127.0.0.1:1,127.0.0.1:2 (connection refused by 127.0.0.1:1, connection refused by 127.0.0.1:2)',
    )
    expect(Date.now() - started).toBeLessThan(1000)
  })

  // no other test may stop a member while this one expects every member up
  it('describes the cluster: every member, its client address, and the leader', () =>
    withClusterLock('etcd', async () => {
      const {registry} = await open()
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
      import {openRegistry} from './src/lib/registry/index.ts'
      const registry = await openRegistry(${JSON.stringify({kind: 'etcd', hosts: hosts.map((h) => hostPort(h)), prefix})})
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
