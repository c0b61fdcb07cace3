import type {Etcd3} from 'etcd3'
import {afterAll, describe, expect, it} from 'vitest'

import type {Registry} from '../../src/lib/registry/types.js'
import {etcdTarget, openEtcd, rawClient} from '../helpers/etcd.js'
import {establishedConnections} from '../../src/lib/procnet.js'
import {WatcherProcess} from '../helpers/scale-driver.js'
import {registerMany, scaleInstance} from '../helpers/scale.js'
import {hostPort} from '../helpers/tcp-proxy.js'

// issue 15 at 2,000 instances over 400 services: one lease for every key of the registering process, a watcher in
// another process on at most 3 connections, and keep-alives that no watcher ever sees.
const N = 2000
// a long TTL keeps the lifecycle's own presence reads few; one registration refreshing every second keeps the shared
// lease alive that often, so a quiet window of 5 s holds keep-alives of every key
const TTL_MS = 30_000
const PACER_REFRESH_MS = 1000
const QUIET_MS = 5000
const {hosts, prefix} = etcdTarget('scale-etcd')
const opened: Registry[] = []
let raw: Etcd3 | undefined
let watcher: WatcherProcess | undefined

describe(`etcd at ${N} instances (${hosts.join(',')}${prefix})`, {timeout: 90_000}, () => {
  afterAll(async () => {
    watcher?.stop()
    // removed in one request first: closing then finds nothing left to deregister, key by key
    await raw?.delete().prefix(`${prefix}/`)
    await Promise.all(opened.map((r) => r.close()))
    await raw?.delete().prefix(`${prefix}/`)
    raw?.close()
  })

  it('registers them in seconds on one lease, and a watcher sees one snapshot, no keep-alive, then one change', async () => {
    raw = rawClient(hosts)
    const {registry} = await open()
    const pacer = await registry.register(scaleInstance('scale', N + 1, N), {
      ttlMs: TTL_MS,
      refreshMs: PACER_REFRESH_MS,
    })
    const started = Date.now()
    await registerMany(registry, N, 'scale', {ttlMs: TTL_MS})
    const registeredMs = Date.now() - started
    // 2,000 gets and puts take 10 to 15 s from a bare etcd3 client on a shared 2-core machine at load 20
    expect(registeredMs).toBeLessThan(40_000)

    // every key on one lease, which holds them all
    const {kvs} = await raw.getAll().prefix(`${prefix}/`).exec()
    expect(kvs).toHaveLength(N + 1)
    const leases = new Set(kvs.map((kv) => kv.lease))
    expect(leases.size).toBe(1)
    const [lease] = leases
    expect(lease).not.toBe('0')
    const held = await raw.leaseClient.leaseTimeToLive({ID: lease!, keys: true})
    expect(held.keys).toHaveLength(N + 1)

    const watchFrom = Date.now()
    watcher = new WatcherProcess({kind: 'etcd', hosts: hosts.map((h) => hostPort(h)), prefix})
    // the bound covers the child's start (tsx compiles src/ on a loaded machine); bench/scale.sh times the snapshot
    const snapshot = await watcher.waitFor((l) => l.type === 'snapshot', 30_000)
    expect(snapshot.n).toBe(N + 1)
    expect(establishedConnections(watcher.pid).length).toBeLessThanOrEqual(3)

    // keep-alives of the one lease, and no watch event
    const quietFrom = watcher.lines.length
    await new Promise((resolve) => {
      setTimeout(resolve, QUIET_MS)
    })
    expect(watcher.lines.slice(quietFrom)).toEqual([])
    // renewed within the window (etcd3's own keep-alive comes every 10 s)
    expect(Number((await raw.leaseClient.leaseTimeToLive({ID: lease!})).TTL)).toBeGreaterThanOrEqual(25)
    expect(pacer.instance.id).toBe(`i${N + 1}`)

    const extra = await registry.register(scaleInstance('scale', N, N), {ttlMs: TTL_MS})
    await watcher.waitFor((l) => l.type === 'added' && l.id === extra.instance.id, 5000)
    expect(watcher.changes().map((l) => l.type)).toEqual(['snapshot', 'added'])
    expect((await raw.get(`${prefix}/${extra.instance.service}/${extra.instance.id}`).exec()).kvs[0]!.lease).toBe(lease)
    expect(establishedConnections(watcher.pid).length).toBeLessThanOrEqual(3)
    console.log(`etcd ${N}: registered in ${registeredMs} ms, watcher snapshot ${snapshot.at - watchFrom} ms`)
  })
})

async function open(): Promise<{registry: Registry; logs: string[]}> {
  return openEtcd(hosts, prefix, opened)
}
