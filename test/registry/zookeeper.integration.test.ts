import {hostname} from 'node:os'

import zookeeper, {type Client} from 'node-zookeeper-client'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {UserError} from '../../src/lib/errors.js'
import type {BackendOptions} from '../../src/lib/registry/options.js'
import {parseBackend} from '../../src/lib/registry/spec.js'
import type {Registry, WatchEvent} from '../../src/lib/registry/types.js'
import {PRIVATE_PORT_META} from '../../src/lib/registry/zookeeper/index.js'
import {eventually} from '../helpers/cli.js'
import {hasTestCluster, testCluster, withClusterLock} from '../helpers/clusters.js'
import {hostPort} from '../helpers/tcp-proxy.js'
import {create, exists, getData, mkdirp, openZk, ownerOf, rawZkClient} from '../helpers/zookeeper.js'

// ZooKeeper-specific behaviour the shared contract suite does not cover: the registrator-compatible layout with
// svc's owner, foreign payloads, and native watches. Fail-over and session loss: zookeeper-failover.integration.
const uri = hasTestCluster('zk') ? testCluster('zk').uri : (process.env.SVC_TEST_ZK ?? 'zk://127.0.0.1:21810/svc-test')
const spec = parseBackend(uri)
if (spec.kind !== 'zk') throw new Error(`SVC_TEST_ZK must be a zk:// URI, not ${uri}`)
const hosts = spec.hosts.map((h) => `${h.host}:${h.port}`)
const base = `${spec.base}/zk-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`

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

/** Change events as `type port` lines. */
const changes = (events: WatchEvent[]): string[] =>
  events.flatMap((e) => (e.type === 'status' ? [] : [`${e.type}${'instance' in e ? ` ${e.instance.port}` : ''}`]))

describe(`ZooKeeper registry (${uri})`, () => {
  let raw: Client

  beforeAll(async () => {
    raw = await rawZkClient(hosts.join(','))
  })

  afterAll(async () => {
    await Promise.all(opened.map((r) => r.close()))
    raw?.close()
  })

  it('writes a registrator-compatible ephemeral znode at <base>/<service>/<address>:<port>, naming its owner', async () => {
    const {registry, session} = open()
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
    // another client may read from a member a moment behind the one the registry wrote through
    const read = (until: (payload: Record<string, unknown>) => boolean = () => true) =>
      eventually(async () => {
        const payload = JSON.parse((await getData(raw, path)).toString('utf8')) as Record<string, unknown>
        return until(payload) && payload
      }, 3000)
    const payload = await read()
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
      owner: {host: hostname(), pid: process.pid, nonce: expect.stringMatching(/^[\da-f]{8,}$/)},
    })
    expect(await ownerOf(raw, path)).toBe(session().id.toString('hex'))

    await handle.setHealth('critical')
    expect(await read((p) => p.health === 'critical')).toMatchObject({health: 'critical', IP: '127.0.0.1'})
    await handle.close()
    await eventually(async () => !(await exists(raw, path)), 3000)
    // like registrator, the service's znode goes with its last instance
    await eventually(async () => !(await exists(raw, `${base}/web`)), 3000)
  })

  it('reads what registrator wrote as foreign records, and skips a znode that is not JSON with one warning', async () => {
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
      // a payload without health reads as unknown, as on every backend
      expect(await registry.listInstances('legacy')).toEqual([
        {
          service: 'legacy',
          id: 'legacy:10.0.0.5:32768',
          address: '10.0.0.5',
          port: 32_768,
          tags: [],
          meta: {},
          health: 'unknown',
          source: {containerId: '4f1d2a', containerName: '', image: '', host: ''},
        },
        {
          service: 'legacy',
          id: 'legacy:10.0.0.6:32769',
          address: '10.0.0.6',
          port: 32_769,
          tags: ['x'],
          meta: {SERVICE_REGION: 'eu'},
          health: 'unknown',
        },
      ])
    }

    expect((await registry.listServices()).find((s) => s.name === 'legacy')).toEqual({
      name: 'legacy',
      instances: 2,
      passing: 0,
    })
    const watch = collect(registry.watch('legacy'))
    await eventually(async () => watch.events.find((e) => e.type === 'snapshot'), 5000)
    expect(logs.filter((l) => l.includes(`${dir}/10.0.0.7:1`))).toEqual([`skipping ${dir}/10.0.0.7:1: it is not JSON`])

    // svc never takes a foreign record over: its id is refused, naming the fix
    await expect(registry.register({service: 'legacy', address: '10.0.0.5', port: 32_768})).rejects.toThrow(
      /taken by a record another tool wrote/,
    )
    // deregister finds a registrator znode by its derived id, or by its name
    expect((await registry.deregister('legacy', 'legacy:10.0.0.5:32768')).removed).toBe(true)
    expect((await registry.deregister('legacy', '10.0.0.6:32769')).removed).toBe(true)
    expect((await registry.deregister('legacy', '10.0.0.6:32769')).removed).toBe(false)
    expect(await registry.listInstances('legacy')).toEqual([])
    await eventually(async () => watch.events.filter((e) => e.type === 'removed').length === 2, 5000)
    await watch.stop()
    await registry.close()
  })

  it('skips bogus health, a line break in an address and a service name svc cannot use, one warning each', async () => {
    const {registry, logs} = open()
    const dir = `${base}/odd`
    const long = 'a'.repeat(1000)
    await mkdirp(raw, dir)
    await mkdirp(raw, `${base}/${long}`)
    await create(raw, `${base}/${long}/10.0.0.1:80`, '{"Name":"x","IP":"10.0.0.1","PublicPort":80}')
    await create(raw, `${dir}/10.0.0.8:80`, '{"Name":"odd","IP":"10.0.0.8","PublicPort":80,"health":"bogus"}')
    await create(raw, `${dir}/10.0.0.9:80`, JSON.stringify({Name: 'odd', IP: '127.0.0.1\r\nX', PublicPort: 80}))
    await create(raw, `${dir}/10.0.0.10:80`, '{"Name":"odd","IP":"10.0.0.10","PublicPort":80,"health":"warning"}')
    const all = collect(registry.watch())
    for (let i = 0; i < 2; i++) {
      expect((await registry.listInstances('odd')).map((s) => `${s.address} ${s.health}`)).toEqual([
        '10.0.0.10 warning',
      ])
      expect((await registry.listServices()).map((s) => s.name)).toContain('odd')
    }

    await eventually(async () => all.events.some((e) => e.type === 'snapshot'), 5000)
    const warnings = logs.filter((l) => l.startsWith('skipping '))
    expect(warnings.filter((w) => w.includes('10.0.0.8:80'))).toEqual([
      expect.stringMatching(/its health "bogus" is not one of passing, warning, critical, unknown/),
    ])
    expect(warnings.filter((w) => w.includes('10.0.0.9:80'))).toHaveLength(1)
    // the listing and the watch skip it by its name: one warning for both
    expect(warnings.filter((w) => w.includes(long.slice(0, 100)))).toHaveLength(1)
    await all.stop()
    await registry.close()
  })

  it('answers empty lists for a base or service that does not exist', async () => {
    const {registry} = openZk({kind: 'zk', hosts: hosts.map((h) => hostPort(h)), base: `${base}/nothing/here`})
    opened.push(registry)
    await registry.ping()
    expect(await registry.listServices()).toEqual([])
    expect(await registry.listInstances('none')).toEqual([])
    expect((await registry.deregister('none', 'x')).removed).toBe(false)
  })

  it('takes over a znode of an owner that has exited, and refuses one of another instance', async () => {
    const {registry, session} = open()
    const dir = `${base}/stale`
    const path = `${dir}/127.0.0.1:7000`
    await mkdirp(raw, dir)
    // an earlier process on this host whose session still holds the znode: pid 2^22 + 1 is above Linux's pid_max
    const exited = {host: hostname(), pid: 4_194_305, nonce: 'gone'}
    const stale = await rawZkClient(hosts.join(','))
    const payload = {id: 'stale:127.0.0.1:7000', service: 'stale', address: '127.0.0.1', port: 7000, owner: exited}
    await create(stale, path, JSON.stringify(payload), zookeeper.CreateMode.EPHEMERAL)
    const before = await ownerOf(raw, path)
    await registry.register({service: 'stale', address: '127.0.0.1', port: 7000})
    const after = await ownerOf(raw, path)
    expect(after).not.toBe(before)
    expect(after).toBe(session().id.toString('hex'))
    await expect(registry.register({service: 'stale', id: 'other', address: '127.0.0.1', port: 7000})).rejects.toThrow(
      UserError,
    )
    stale.close()
    await registry.close()
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
    await Promise.all([service.stop(), all.stop()])
    await watcher.close()
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
