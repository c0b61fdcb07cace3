import type {Client} from 'node-zookeeper-client'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {startMember, stopMember} from '../../src/lib/cluster/index.js'
import type {BackendOptions} from '../../src/lib/registry/options.js'
import {parseBackend} from '../../src/lib/registry/spec.js'
import type {RegistrationState, Registry, WatchEvent} from '../../src/lib/registry/types.js'
import {eventually, runCli} from '../helpers/cli.js'
import {hasTestCluster, testCluster, withClusterLock} from '../helpers/clusters.js'
import {hostPort, TcpProxy} from '../helpers/tcp-proxy.js'
import {exists, getData, openZk, ownerOf, rawZkClient} from '../helpers/zookeeper.js'

// Keeping registrations and watches through fail-over, partitions and session expiry, and how fast svc gives up on
// members that cannot answer. A stopped member and a lost leader are the contract suite's (contract.integration).
const uri = hasTestCluster('zk') ? testCluster('zk').uri : (process.env.SVC_TEST_ZK ?? 'zk://127.0.0.1:21810/svc-test')
const spec = parseBackend(uri)
if (spec.kind !== 'zk') throw new Error(`SVC_TEST_ZK must be a zk:// URI, not ${uri}`)
const hosts = spec.hosts.map((h) => `${h.host}:${h.port}`)
const base = `${spec.base}/zf-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`

const opened: Registry[] = []

function open(connect: string[] = hosts, options: Partial<BackendOptions> = {}): ReturnType<typeof openZk> {
  const zk = openZk({kind: 'zk', hosts: connect.map((h) => hostPort(h)), base}, options)
  opened.push(zk.registry)
  return zk
}

/** Collects a watch stream in the background; `stop` ends it (closing a registry does not end its watches). */
function collect(stream: AsyncIterable<WatchEvent>): {events: WatchEvent[]; stop: () => Promise<void>} {
  const events: WatchEvent[] = []
  const iterator = stream[Symbol.asyncIterator]()
  const done = (async () => {
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) events.push(next.value)
  })()
  return {
    events,
    async stop() {
      await iterator.return?.()
      await done
    },
  }
}

/** A fresh registry's first listing, as every `svc resolve` process opens one: nothing is remembered between. */
async function lookup(): Promise<number> {
  const {registry} = open()
  const started = Date.now()
  await registry.listServices()
  const took = Date.now() - started
  await registry.close()
  return took
}

type Seen = {state: RegistrationState; detail: string; at: number}
const recorder = (): {states: Seen[]; onStateChange: (state: RegistrationState, detail: string) => void} => {
  const states: Seen[] = []
  return {states, onStateChange: (state, detail) => states.push({state, detail, at: Date.now()})}
}

describe(`ZooKeeper fail-over (${uri})`, () => {
  let raw: Client

  beforeAll(async () => {
    raw = await rawZkClient(hosts.join(','))
  })

  afterAll(async () => {
    await Promise.all(opened.map((r) => r.close()))
    raw?.close()
  })

  it('re-creates its znodes and re-arms its watches on a new session when the session expires', async () => {
    const proxies = await Promise.all(hosts.map((h) => new TcpProxy(h).start()))
    try {
      const {registry, logs, session} = open(proxies.map((p) => p.address))
      const {states, onStateChange} = recorder()
      const handle = await registry.register(
        {service: 'expiring', id: 'e1', address: '127.0.0.1', port: 7200},
        {ttlMs: 4000, onStateChange},
      )
      const watch = collect(registry.watch('expiring'))
      await eventually(async () => watch.events.some((e) => e.type === 'snapshot'), 5000)
      const path = `${base}/expiring/127.0.0.1:7200`
      const oldSession = session()

      // while the registry cannot reach the ensemble, another client takes its session over and closes it:
      // the server ends the session as it does on expiry, and the registry learns it when it reconnects
      for (const p of proxies) p.cut()
      const thief = await rawZkClient(hosts.join(','), undefined, {
        sessionId: oldSession.id,
        sessionPassword: oldSession.password,
      })
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
        // a changed e1, or an added one when the watch read the service between the expiry and the re-creation
        async () =>
          watch.events.some(
            (e) =>
              (e.type === 'changed' || e.type === 'added') &&
              e.instance.id === 'e1' &&
              e.instance.health === 'critical',
          ),
        5000,
      ).catch(async (error: unknown) => {
        const znode = await getData(raw, path).catch(String)
        throw new Error(
          `${String(error)}; znode ${String(znode)}; logs: ${logs.join(' | ')}; events: ${JSON.stringify(watch.events)}`,
        )
      })
      await registry.register({service: 'expiring', id: 'e2', address: '127.0.0.1', port: 7201})
      await eventually(async () => watch.events.some((e) => e.type === 'added' && e.instance.id === 'e2'), 5000)
      expect((await registry.listInstances('expiring')).map((i) => i.id)).toEqual(['e1', 'e2'])
      console.log(`session expiry: re-created ${restoredAfter} ms after the registry could reach the ensemble again`)
      await watch.stop()
      await registry.close()
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
      const {states, onStateChange} = recorder()
      await registry.register({service: 'failover', address: '127.0.0.1', port: 7300}, {ttlMs: 4000, onStateChange})
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
      await watch.stop()
      await registry.close()
    } finally {
      await Promise.all(proxies.map((p) => p.stop()))
    }
  })

  it('reports a partition longer than the session timeout as lost, and restores the znode when it heals', async () => {
    const proxies = await Promise.all(hosts.map((h) => new TcpProxy(h).start()))
    try {
      const {registry, logs} = open(proxies.map((p) => p.address))
      const {states, onStateChange} = recorder()
      await registry.register({service: 'partition', address: '127.0.0.1', port: 7400}, {ttlMs: 2000, onStateChange})
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
    const {registry} = open([proxy.address], {connectTimeoutMs: 1000})
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

  it('says at once, not after the connect timeout, that every member refused or was not found', async () => {
    const closed = await new TcpProxy(hosts[0]!).start()
    const port = hostPort(closed.address).port
    await closed.stop()
    for (const [members, message] of [
      [[`127.0.0.1:${port}`], `connection refused: 127.0.0.1:${port}`],
      [['svc-no-such-host.invalid:2181'], 'address not found: svc-no-such-host.invalid:2181'],
    ] as const) {
      const {registry} = open([...members], {connectTimeoutMs: 5000})
      const started = Date.now()
      await expect(registry.listServices()).rejects.toThrow(message)
      expect(Date.now() - started).toBeLessThan(1000)
    }

    const result = await runCli(['resolve', '-b', `zk://127.0.0.1:${port}/services`])
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/connection refused/)
  })

  it('does not wait for a stopped (SIGSTOP) first member on every call', () =>
    withClusterLock('zk', async () => {
      const {manifest} = testCluster('zk')
      const first = manifest.members[0]!
      const resolve = async (): Promise<number> => {
        const started = Date.now()
        const result = await runCli(['resolve', '-b', `zk://${hosts.join(',')}${base}`])
        expect(result.code, result.stderr).toBe(0)
        return Date.now() - started
      }

      const healthy = [await resolve(), await resolve()]
      await stopMember(manifest, first.index, 'SIGSTOP')
      const frozen: number[] = []
      const fresh: number[] = []
      try {
        for (let i = 0; i < 4; i++) frozen.push(await resolve())
        for (let i = 0; i < 6; i++) fresh.push(await lookup())
      } finally {
        await startMember(manifest, first.index)
      }

      console.log(
        `first member frozen: svc resolve ${frozen.join(', ')} ms (healthy: ${healthy.join(', ')} ms); ` +
          `a fresh registry's first listing ${fresh.join(', ')} ms`,
      )
      // a connect timeout is 5 s and a member's share of the handshake 3.3 s: neither was waited for
      expect(Math.max(...fresh)).toBeLessThan(1500)
      expect(Math.max(...frozen)).toBeLessThan(Math.max(...healthy) + 1500)
    }))
})
