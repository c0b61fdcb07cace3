import type {Client} from 'node-zookeeper-client'
import {afterAll, describe, expect, it} from 'vitest'

import {tcpCommand} from '../../src/lib/net.js'
import {parseBackend} from '../../src/lib/registry/spec.js'
import type {Registry} from '../../src/lib/registry/types.js'
import {testCluster, withClusterLock} from '../helpers/clusters.js'
import {establishedConnections} from '../../src/lib/procnet.js'
import {WatcherProcess} from '../helpers/scale-driver.js'
import {registerMany, scaleInstance} from '../helpers/scale.js'
import {openZk, rawZkClient, zk} from '../helpers/zookeeper.js'

// issue 15 at 2,000 instances over 400 services: every znode on the registering process's one session, a watcher in
// another process on one connection, and a session timeout that passes with no watch event and no rewrite.
const N = 2000
// the default session timeout: the client pings every 3.3 s, so a quiet window of 4 s holds a ping (a TTL of its own
// would make the first registrations reopen the session under the others' reads)
const TTL_MS = 10_000
const QUIET_MS = 4000
const spec = parseBackend(testCluster('zk').uri)
if (spec.kind !== 'zk') throw new Error('the zk test cluster has no zk:// URI')
const members = spec.hosts
const base = `${spec.base}/scale-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`
const opened: Registry[] = []
let raw: Client | undefined
let watcher: WatcherProcess | undefined

/** The session owning each instance's znode, and its data version, in one pipelined pass. */
async function znodes(client: Client, n: number): Promise<Array<{owner: string; version: number}>> {
  return Promise.all(
    Array.from({length: n}, async (_, i) => {
      const {service, address, port} = scaleInstance('scale', i, N)
      const stat = await zk<{ephemeralOwner: Buffer; version: number} | null>((cb) =>
        client.exists(`${base}/${service}/${address}:${port}`, (e, s) => cb(e, s)),
      )
      return {owner: stat ? stat.ephemeralOwner.toString('hex') : '', version: stat?.version ?? -1}
    }),
  )
}

/** The requests every member of the ensemble has received so far (mntr's zk_packets_received, summed). */
async function packetsReceived(): Promise<number> {
  const counts = await Promise.all(
    members.map(async ({host, port}) => {
      const text = await tcpCommand(host, port, 'mntr', 5000)
      return Number(/^zk_packets_received\s+(\d+)/m.exec(text)?.[1] ?? Number.NaN)
    }),
  )
  return counts.reduce((a, b) => a + b, 0)
}

describe(`ZooKeeper at ${N} instances (${base})`, () => {
  afterAll(async () => {
    watcher?.stop()
    await Promise.all(opened.map((r) => r.close()))
    raw?.close()
  })

  // a drill that stops a member meanwhile (contract, failover) would show in the quiet period as status
  // events: the run holds the cluster's disruption lock
  it(
    'registers them in seconds on one session, and a watcher sees one snapshot, no heartbeat, then one change',
    async () =>
      withClusterLock(
        'zk',
        async () => {
          raw = await rawZkClient(spec.hosts.map((h) => `${h.host}:${h.port}`).join(','))
          const {registry} = openZk({...spec, base})
          opened.push(registry)
          const started = Date.now()
          await registerMany(registry, N, 'scale', {ttlMs: TTL_MS})
          expect(Date.now() - started).toBeLessThan(15_000)

          const before = await znodes(raw, N)
          const owners = new Set(before.map((z) => z.owner))
          expect(owners.size).toBe(1)
          expect([...owners][0]).not.toBe('')

          watcher = new WatcherProcess({...spec, base})
          // the bound covers the child's start (tsx compiles src/ on a loaded machine); bench/scale.sh times the snapshot
          const snapshot = await watcher.waitFor((l) => l.type === 'snapshot', 30_000)
          expect(snapshot.n).toBe(N)
          expect(establishedConnections(watcher.pid).length).toBeLessThanOrEqual(3)

          // a ping of the session and the lifecycle's presence checks, and no watch event, no rewrite
          const quietFrom = watcher.lines.length
          await new Promise((resolve) => {
            setTimeout(resolve, QUIET_MS)
          })
          expect(watcher.lines.slice(quietFrom)).toEqual([])
          // the first presence check has read every znode back under a data watch; the next ones read none of them while
          // the watches have not fired (they read all of them every period: 2,000 reads each 3.3 s, which every other
          // client of that member waited behind): pings only
          const packetsFrom = await packetsReceived()
          await new Promise((resolve) => {
            setTimeout(resolve, QUIET_MS)
          })
          expect(await packetsReceived()).toBeLessThan(packetsFrom + N / 10)
          expect(watcher.lines.slice(quietFrom)).toEqual([])
          const after = await znodes(raw, N)
          expect(after).toEqual(before)

          const extra = await registry.register(scaleInstance('scale', N, N), {ttlMs: TTL_MS})
          await watcher.waitFor((l) => l.type === 'added' && l.id === extra.instance.id, 5000)
          expect(watcher.changes().map((l) => l.type)).toEqual(['snapshot', 'added'])
          expect(establishedConnections(watcher.pid).length).toBeLessThanOrEqual(3)
        },
        180_000,
      ),
    300_000,
  )
})
