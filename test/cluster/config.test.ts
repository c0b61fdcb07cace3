import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'

import {consulPlan} from '../../src/lib/cluster/consul.js'
import type {MemberLayout, PlanContext} from '../../src/lib/cluster/driver.js'
import {etcdPlan, parseEtcdStatus} from '../../src/lib/cluster/etcd.js'
import {findBinary} from '../../src/lib/cluster/binaries.js'
import {parseManifest, readManifest, writeManifest} from '../../src/lib/cluster/manifest.js'
import {allocatePorts} from '../../src/lib/cluster/ports.js'
import type {ClusterManifest} from '../../src/lib/cluster/types.js'
import {parseSrvr, ZK_MAIN_CLASS, zookeeperConfig, zookeeperPlan} from '../../src/lib/cluster/zookeeper.js'
import {UserError} from '../../src/lib/errors.js'

function layoutFor(names: string[], portNames: string[]): PlanContext {
  const members = names.map((name, index): MemberLayout => {
    const ports: Record<string, number> = {}
    for (const [j, role] of portNames.entries()) ports[role] = 10_000 + j * 100 + index
    return {name, index, ports, memberDir: `/c/${name}`, dataDir: `/c/${name}/data`, logFile: `/c/${name}/server.log`}
  })
  return {clusterName: 't', token: 't-abc', members}
}

describe('ZooKeeper member config', () => {
  it('writes one server line per member, loopback client address, short ticks and the 4lw whitelist', () => {
    const cfg = zookeeperConfig({
      dataDir: '/d',
      clientPort: 2181,
      servers: [
        {id: 1, quorumPort: 2888, electionPort: 3888},
        {id: 2, quorumPort: 2889, electionPort: 3889},
        {id: 3, quorumPort: 2890, electionPort: 3890},
      ],
    })
    const lines = cfg.trim().split('\n')
    expect(lines).toEqual(
      expect.arrayContaining([
        'tickTime=500',
        'initLimit=10',
        'syncLimit=5',
        'dataDir=/d',
        'clientPort=2181',
        'clientPortAddress=127.0.0.1',
        'admin.enableServer=false',
        '4lw.commands.whitelist=srvr,mntr,ruok,stat',
        'server.1=127.0.0.1:2888:3888',
        'server.2=127.0.0.1:2889:3889',
        'server.3=127.0.0.1:2890:3890',
      ]),
    )
  })

  it('leaves out server lines for a single member, which then runs standalone', () => {
    expect(
      zookeeperConfig({dataDir: '/d', clientPort: 1, servers: [{id: 1, quorumPort: 2, electionPort: 3}]}),
    ).not.toMatch(/server\./)
  })

  it('plans java with a small heap, the member config and myid = index + 1', () => {
    const plan = zookeeperPlan(layoutFor(['zk1', 'zk2', 'zk3'], ['client', 'quorum', 'election']), 1, '/cp')
    expect(plan.args).toContain('-Xmx256m')
    expect(plan.args.slice(-2)).toEqual([ZK_MAIN_CLASS, '/c/zk2/zoo.cfg'])
    expect(plan.args[plan.args.indexOf('-cp') + 1]).toBe('/cp')
    expect(plan.files).toEqual([
      {path: '/c/zk2/zoo.cfg', content: expect.stringContaining('clientPort=10001\n')},
      {path: '/c/zk2/data/myid', content: '2\n'},
    ])
    expect(plan.files[0]?.content).toContain('server.3=127.0.0.1:10102:10202')
  })

  it('reads the role from srvr', () => {
    expect(
      parseSrvr('Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nMode: follower\nNode count: 5\n'),
    ).toEqual({
      up: true,
      role: 'follower',
    })
    expect(parseSrvr('Mode: leader\n').role).toBe('leader')
    expect(parseSrvr('This ZooKeeper instance is not currently serving requests\n')).toMatchObject({
      up: false,
      role: 'unknown',
    })
  })
})

describe('etcd member flags', () => {
  it('names every peer in --initial-cluster and listens on loopback only', () => {
    const {args} = etcdPlan(layoutFor(['etcd1', 'etcd2', 'etcd3'], ['client', 'peer']), 0)
    expect(args).toContain(
      '--initial-cluster=etcd1=http://127.0.0.1:10100,etcd2=http://127.0.0.1:10101,etcd3=http://127.0.0.1:10102',
    )
    expect(args).toContain('--listen-client-urls=http://127.0.0.1:10000')
    expect(args).toContain('--initial-cluster-token=t-abc')
    expect(args).toContain('--initial-cluster-state=new')
    expect(args.filter((a) => a.includes('://')).every((a) => a.includes('http://127.0.0.1:'))).toBe(true)
  })

  it('reads member and leader ids from the status answer', () => {
    expect(parseEtcdStatus(JSON.parse('{"header":{"member_id":"42"},"leader":"42"}'))).toEqual({
      up: true,
      selfId: '42',
      leaderId: '42',
    })
    expect(parseEtcdStatus(JSON.parse('{"header":{"member_id":"42"}}'))).toMatchObject({
      up: true,
      selfId: '42',
      detail: 'no leader',
    })
  })
})

describe('Consul member flags', () => {
  it('joins the other members, bootstraps on all of them, and stays on loopback', () => {
    const {args} = consulPlan(layoutFor(['consul1', 'consul2', 'consul3'], ['http', 'serfLan', 'serfWan', 'server']), 2)
    const joins = args.flatMap((a, i) => (a === '-retry-join' ? [args[i + 1]] : []))
    expect(joins).toEqual(['127.0.0.1:10100', '127.0.0.1:10101'])
    expect(args.join(' ')).toContain('-bootstrap-expect 3 -bind 127.0.0.1 -client 127.0.0.1')
    expect(args.join(' ')).toContain('-dns-port -1 -grpc-port -1')
    expect(args).toContain('disable_update_check = true')
    expect(args).toContain('performance { raft_multiplier = 1 }')
  })
})

describe('manifest', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'svc-manifest-'))
  afterAll(() => rmSync(dir, {recursive: true, force: true}))

  it('round-trips through manifest.json and rejects a broken one', async () => {
    const manifest: ClusterManifest = {
      name: 'x',
      kind: 'etcd',
      dir,
      createdAt: new Date(0).toISOString(),
      backendUri: 'etcd://127.0.0.1:1/services',
      members: [
        {
          name: 'etcd1',
          index: 0,
          clientPort: 1,
          ports: {client: 1, peer: 2},
          pid: 7,
          dataDir: '/d',
          logFile: '/l',
          command: '/bin/etcd',
          args: ['-a'],
        },
      ],
      timings: {answeringMs: 1, leaderMs: 2, readyMs: 3},
    }
    await writeManifest(manifest)
    expect(await readManifest(dir)).toEqual(manifest)
    expect(await readManifest(path.join(dir, 'manifest.json'))).toEqual(manifest)
    expect(() => parseManifest('{"name":"x"}', 'here')).toThrow(UserError)
    await expect(readManifest(path.join(dir, 'missing.json'))).rejects.toThrow(/no cluster manifest/)
  })
})

describe('ports and binaries', () => {
  it('hands out distinct free ports, never the same one twice in a process', async () => {
    const a = await allocatePorts(20)
    const b = await allocatePorts(20)
    expect(new Set([...a, ...b]).size).toBe(40)
  })

  it('names the package to install when a server is missing', () => {
    expect(() => findBinary('etcd', {PATH: '/nonexistent'})).toThrow(/etcd is not installed/)
    try {
      findBinary('etcd', {PATH: '/nonexistent'})
    } catch (error) {
      expect(error).toBeInstanceOf(UserError)
      expect((error as UserError).hint).toMatch(/etcd-server.*install-backends\.sh/)
    }

    expect(() => findBinary('zk', {SVC_ZOOKEEPER_JAR: '/nonexistent.jar'})).toThrow(/ZooKeeper is not installed/)
  })
})
