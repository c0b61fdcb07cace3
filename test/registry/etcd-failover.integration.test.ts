import type {Etcd3} from 'etcd3'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {clusterStatus, startMember, stopMember} from '../../src/lib/cluster/index.js'
import type {RegistrationState, Registry} from '../../src/lib/registry/types.js'
import {eventually} from '../helpers/cli.js'
import {testCluster, withClusterLock} from '../helpers/clusters.js'
import {changes, collect, etcdTarget, openEtcd, rawClient, withProxies} from '../helpers/etcd.js'

// etcd fail-over: partitions, cut watch streams, a frozen member (a stopped member and a killed leader are the contract
// suite's, in contract.integration).
const {hosts, prefix} = etcdTarget('etcd-failover')
const opened: Registry[] = []
const open = (connect: string[] = hosts, options = {}): Promise<{registry: Registry; logs: string[]}> =>
  openEtcd(connect, prefix, opened, options)
/** The test cluster's election timeout is 500 ms (src/lib/cluster/etcd.ts); a new leader takes about twice that. */
const ELECTION_MS = 1000
const portOf = (address: string): string => address.slice(address.lastIndexOf(':') + 1)

describe(`etcd fail-over (${hosts.join(',')}${prefix})`, () => {
  let raw: Etcd3

  beforeAll(() => {
    raw = rawClient(hosts)
  })

  afterAll(async () => {
    await Promise.all(opened.map((r) => r.close()))
    await raw?.delete().prefix(`${prefix}/`)
    raw?.close()
  })

  /** Polls the key every 50 ms from `from` on; resolves with when it was last missing (or `from`) once it is back. */
  async function presentAgain(key: string, from: number, timeoutMs: number): Promise<number> {
    let lastMissing = from
    await eventually(async () => {
      const value = await raw.get(key).string()
      if (value === null) lastMissing = Date.now()
      return value !== null && Date.now() - lastMissing > 500
    }, timeoutMs)
    return lastMissing
  }

  it('restores a registration whose lease expired while the cluster was out of reach', async () => {
    await withProxies(hosts, async (proxies) => {
      const {registry, logs} = await open(
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
      // one loss episode: one lost, one restored
      expect(states).toEqual(['lost', 'restored'])
      expect(await raw.get(key).string()).not.toBeNull()
      expect(logs.some((l) => l.includes('keep-alive of lease'))).toBe(true)
      await registry.close()
      expect(await raw.get(key).string()).toBeNull()
    })
  })

  it('resumes a watch after its connection is cut, without losing what changed meanwhile', async () => {
    await withProxies(hosts, async (proxies) => {
      const {registry} = await open(proxies.map((p) => p.address))
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
    await withProxies(hosts, async (proxies) => {
      const {registry, logs} = await open(proxies.map((p) => p.address))
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

  it('answers at once on every new client while the first listed member is frozen', () =>
    withClusterLock('etcd', async () => {
      const {manifest} = testCluster('etcd')
      // a follower: freezing the leader would measure the election, not the fail-over
      const frozen = (await clusterStatus(manifest)).find((m) => m.role === 'follower')
      expect(frozen).toBeDefined()
      const listed = [frozen!.address, ...hosts.filter((h) => portOf(h) !== portOf(frozen!.address))]
      await stopMember(manifest, frozen!.index, 'SIGSTOP')
      try {
        const took: number[] = []
        for (let i = 0; i < 5; i++) {
          // a fresh registry each time, as every `svc resolve` is a new process
          const {registry} = await open(listed, {connectTimeoutMs: 5000})
          const started = Date.now()
          await registry.listServices()
          took.push(Date.now() - started)
          await registry.close()
        }

        // before, each call waited for a 2 s attempt on the frozen member first whenever etcd3 chose it
        expect(Math.max(...took), `took ${took.join(', ')} ms`).toBeLessThan(1000)
      } finally {
        await startMember(manifest, frozen!.index)
      }
    }))

  it('keeps a registration when the member it talks to freezes for twice its TTL', () =>
    withClusterLock('etcd', async () =>
      withProxies(hosts, async (proxies) => {
        const {manifest} = testCluster('etcd')
        const {registry} = await open(proxies.map((p) => p.address))
        const states: RegistrationState[] = []
        const handle = await registry.register(
          {service: 'member-freeze', id: 'f1', address: '127.0.0.1', port: 8450},
          {ttlMs: 3000, onStateChange: (state) => states.push(state)},
        )
        const used = await eventually(async () => {
          const busy = proxies.flatMap((p, i) => (p.connections > 0 ? [i] : []))
          return busy.length === 1 ? busy[0] : undefined
        }, 3000)
        const index = manifest.members.findIndex((m) => portOf(hosts[used]!) === String(m.ports.client))
        const key = `${prefix}/member-freeze/f1`
        const frozenAt = Date.now()
        await stopMember(manifest, index, 'SIGSTOP')
        try {
          const missingUntil = await presentAgain(key, frozenAt, ELECTION_MS + 5000)
          expect(missingUntil - frozenAt).toBeLessThan(ELECTION_MS + 2000)
          // past twice the TTL the lease is still kept alive, through another member
          await new Promise((resolve) => {
            setTimeout(resolve, 6000 - (Date.now() - frozenAt))
          })
          expect(await raw.get(key).string()).not.toBeNull()
        } finally {
          await startMember(manifest, index)
        }

        expect(states.length).toBeLessThanOrEqual(2)
        expect(states).toEqual(['lost', 'restored'].slice(0, states.length))
        await handle.close()
        expect(await raw.get(key).string()).toBeNull()
      }),
    ))
})
