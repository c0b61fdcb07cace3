import {type ChildProcess, spawn} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import zookeeper, {type ACL, type Client} from 'node-zookeeper-client'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {zookeeperClasspath} from '../../src/lib/cluster/binaries.js'
import {allocatePorts} from '../../src/lib/cluster/ports.js'
import {tcpCommand} from '../../src/lib/net.js'
import {ZK_MAIN_CLASS, zookeeperConfig, zookeeperJvmArgs} from '../../src/lib/cluster/zookeeper.js'
import {type Credentials, specFromFlags} from '../../src/lib/registry/spec.js'
import type {RegistrationState, Registry, WatchEvent} from '../../src/lib/registry/types.js'
import {digestId} from '../../src/lib/registry/zookeeper/index.js'
import {eventually, runCli, spawnCli, waitForExit, waitForOutput} from '../helpers/cli.js'
import {TcpProxy} from '../helpers/tcp-proxy.js'
import {create, exists, getAcl, getData, openZk, ownerOf, rawZkClient, remove, zk} from '../helpers/zookeeper.js'

// A standalone ZooKeeper of this file's own (the shared test clusters have no ACLs): digest auth, the ACLs svc gives
// its znodes, what a client without the password may do, and foreign payloads.
const ALICE: Credentials = {user: 'alice', password: 's3cret/p@ss'}
const ALICE_URI_AUTH = 'alice:s3cret%2Fp%40ss'
const base = '/secure'

let dir = ''
let server: ChildProcess | undefined
let address = ''
const opened: Registry[] = []
const clients: Client[] = []

function open(opts: {auth?: Credentials; acl?: string; connect?: string} = {}): ReturnType<typeof openZk> {
  const spec = specFromFlags(
    {
      backend: `zk://${opts.connect ?? address}${base}`,
      'zk-auth': opts.auth && `${opts.auth.user}:${opts.auth.password}`,
      'zk-acl': opts.acl,
    },
    {},
  )
  if (spec.kind !== 'zk') throw new Error('not a zk spec')
  const zk = openZk(spec)
  opened.push(zk.registry)
  return zk
}

/** A plain node-zookeeper-client, as another tool (or an attacker without the password) would use. */
async function rawClient(auth?: Credentials, options: Record<string, unknown> = {}): Promise<Client> {
  const client = await rawZkClient(address, auth, {retries: 0, ...options})
  clients.push(client)
  return client
}

/** `scheme:id:perms` for each entry, perms as cdrwa letters, sorted (the library's ACL has `permission`, not its typed `perms`). */
function aclText(acls: ACL[]): string[] {
  const {CREATE, DELETE, READ, WRITE, ADMIN} = zookeeper.Permission
  const letters: Array<[number, string]> = [
    [CREATE, 'c'],
    [DELETE, 'd'],
    [READ, 'r'],
    [WRITE, 'w'],
    [ADMIN, 'a'],
  ]
  return acls
    .map(
      (a) =>
        `${a.id.scheme}:${a.id.id}:${letters.map(([bit, l]) => (Math.floor(permission(a) / bit) % 2 === 1 ? l : '')).join('')}`,
    )
    .sort()
}

const permission = (acl: ACL): number => (acl as unknown as {permission: number}).permission

/** The first snapshot of a watch (status events come before it), within 10 s; the watch then ends. */
async function firstSnapshot(stream: AsyncIterable<WatchEvent>): Promise<WatchEvent | undefined> {
  const iterator = stream[Symbol.asyncIterator]()
  const deadline = Date.now() + 10_000
  try {
    while (Date.now() < deadline) {
      const next = await Promise.race([
        iterator.next(),
        new Promise<undefined>((resolve) => {
          setTimeout(() => resolve(undefined), Math.max(0, deadline - Date.now())).unref()
        }),
      ])
      if (!next || next.done) return undefined
      if (next.value.type === 'snapshot') return next.value
    }

    return undefined
  } finally {
    await iterator.return?.()
  }
}

const codeOf = (error: unknown): string => (error instanceof zookeeper.Exception ? error.getName() : String(error))

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'svc-zk-secure-'))
  const [clientPort] = await allocatePorts(1)
  address = `127.0.0.1:${clientPort}`
  const cfg = path.join(dir, 'zoo.cfg')
  writeFileSync(
    cfg,
    zookeeperConfig({
      dataDir: path.join(dir, 'data'),
      clientPort: clientPort!,
      servers: [{id: 1, quorumPort: 0, electionPort: 0}],
    }),
  )
  server = spawn('java', [...zookeeperJvmArgs(dir, zookeeperClasspath()), ZK_MAIN_CLASS, cfg], {
    stdio: ['ignore', 'ignore', 'ignore'],
  })
  await eventually(
    async () => /Mode: standalone/.test(await tcpCommand('127.0.0.1', clientPort!, 'srvr', 1000)),
    60_000,
    200,
  )
})

afterAll(async () => {
  await Promise.allSettled(opened.map((r) => r.close()))
  for (const c of clients) c.close()
  if (server?.pid !== undefined && server.exitCode === null) {
    server.kill('SIGKILL')
    await waitForExit(server, 10_000).catch(() => {})
  }

  if (dir) rmSync(dir, {recursive: true, force: true})
})

describe('ZooKeeper with digest auth and ACLs', () => {
  const aliceAcl = [`digest:${digestId(ALICE)}:cdrwa`, 'world:anyone:r']

  it('gives every znode it creates the creator all rights and the world read, by default', async () => {
    const {registry} = open({auth: ALICE})
    await registry.register({service: 'web', id: 'w1', address: '127.0.0.1', port: 8001})
    // ZooKeeper shows digest hashes only to a client with ADMIN rights
    const reader = await rawClient(ALICE)
    for (const p of [base, `${base}/web`, `${base}/web/127.0.0.1:8001`])
      expect(aclText(await getAcl(reader, p))).toEqual(aliceAcl)
    expect(JSON.parse((await getData(reader, `${base}/web/127.0.0.1:8001`)).toString())).toMatchObject({id: 'w1'})
    expect((await registry.listInstances('web')).map((i) => i.id)).toEqual(['w1'])
  })

  it('lets a client without the password read the znodes but not delete or add to them (NO_AUTH)', async () => {
    const stranger = await rawClient()
    const mallory = await rawClient({user: 'alice', password: 'wrong'})
    for (const client of [stranger, mallory]) {
      expect(JSON.parse((await getData(client, `${base}/web/127.0.0.1:8001`)).toString())).toMatchObject({id: 'w1'})
      await expect(remove(client, `${base}/web/127.0.0.1:8001`).catch(codeOf)).resolves.toBe('NO_AUTH')
      await expect(create(client, `${base}/web/10.0.0.9:1`, '{}').catch(codeOf)).resolves.toBe('NO_AUTH')
    }

    // svc itself without credentials: reads work, deregistering another's instance is refused in one line
    const {registry} = open()
    expect((await registry.listInstances('web')).map((i) => i.id)).toEqual(['w1'])
    const error = await registry.deregister('web', 'w1').catch((error_: unknown) => error_)
    expect(String(error)).toMatch(
      /deregister web w1 failed: the znode's ACL denies an unauthenticated client \(NO_AUTH\)/,
    )
    expect((error as {hint?: string}).hint).toMatch(/--zk-auth user:password/)
  })

  it('takes --zk-acl: named ACLs and zkCli entries', async () => {
    const {registry} = open({auth: ALICE, acl: 'open'})
    await registry.register({service: 'open-svc', id: 'o1', address: '127.0.0.1', port: 8101})
    // ZooKeeper shows digest hashes only to a client with ADMIN rights
    const reader = await rawClient(ALICE)
    expect(aclText(await getAcl(reader, `${base}/open-svc/127.0.0.1:8101`))).toEqual(['world:anyone:cdrwa'])
    const bob = {user: 'bob', password: 'b0b'}
    const custom = open({auth: ALICE, acl: `world:anyone:r,digest:${digestId(bob)}:rd,creator-all`}).registry
    await custom.register({service: 'custom', id: 'c1', address: '127.0.0.1', port: 8102})
    expect(aclText(await getAcl(reader, `${base}/custom/127.0.0.1:8102`))).toEqual(
      [`digest:${digestId(ALICE)}:cdrwa`, `digest:${digestId(bob)}:dr`, 'world:anyone:r'].sort(),
    )
  })

  it('registers under a base path made for it by an admin, in a tree it may not write', async () => {
    const admin = {user: 'admin', password: 'adm1n'}
    const root = await rawClient(admin)
    const {Id, Permission} = zookeeper
    const acl = (id: string, perms: number): ACL => new zookeeper.ACL(perms, new Id('digest', id))
    const world = new zookeeper.ACL(Permission.READ, new Id('world', 'anyone'))
    const createWith = (p: string, acls: ACL[]): Promise<string> =>
      zk((cb) => root.create(p, Buffer.from(''), acls, zookeeper.CreateMode.PERSISTENT, (e, created) => cb(e, created)))
    await createWith('/locked', [acl(digestId(admin), Permission.ALL), world])
    await createWith('/locked/services', [
      acl(digestId(admin), Permission.ALL),
      acl(digestId(ALICE), Permission.ALL),
      world,
    ])
    const spec = specFromFlags({backend: `zk://${address}/locked/services`, 'zk-auth': 'alice:s3cret/p@ss'}, {})
    if (spec.kind !== 'zk') throw new Error('not a zk spec')
    const {registry} = openZk(spec)
    opened.push(registry)
    await registry.register({service: 'inside', id: 'i1', address: '127.0.0.1', port: 8301})
    expect(aclText(await getAcl(await rawClient(ALICE), '/locked/services/inside'))).toEqual(aliceAcl)
    expect(await exists(root, '/locked/services/inside/127.0.0.1:8301')).toBe(true)
  })

  it('authenticates every session: after a reconnection and after the session expired', async () => {
    const proxy = await new TcpProxy(address).start()
    try {
      const {registry, session} = open({auth: ALICE, connect: proxy.address})
      const states: RegistrationState[] = []
      await registry.register(
        {service: 'resilient', id: 'r1', address: '127.0.0.1', port: 8201},
        {ttlMs: 4000, onStateChange: (state) => states.push(state)},
      )
      const nodePath = `${base}/resilient/127.0.0.1:8201`
      const watcher = await rawClient(ALICE)
      const stolen = session()

      // same session, new connection: the library sends the credentials again
      proxy.cut()
      proxy.heal()
      await registry.register({service: 'resilient', id: 'r2', address: '127.0.0.1', port: 8202})
      expect(aclText(await getAcl(watcher, `${base}/resilient/127.0.0.1:8202`))).toEqual(aliceAcl)

      // a new session after expiry re-creates the znode with the ACL, and may still remove it
      proxy.cut()
      const thief = await rawClient(undefined, {
        sessionId: stolen.id,
        sessionPassword: stolen.password,
      })
      await new Promise<void>((resolve) => {
        thief.once('disconnected', resolve)
        thief.close()
      })
      await eventually(async () => !(await exists(watcher, nodePath)), 5000)
      const oldOwner = stolen.id.toString('hex')
      proxy.heal()
      await eventually(async () => states.includes('restored') && exists(watcher, nodePath), 15_000)
      expect(await ownerOf(watcher, nodePath)).not.toBe(oldOwner)
      expect(aclText(await getAcl(watcher, nodePath))).toEqual(aliceAcl)
      expect((await registry.deregister('resilient', 'r1')).removed).toBe(true)
      expect(await exists(watcher, nodePath)).toBe(false)
    } finally {
      await proxy.stop()
    }
  })

  it('skips a foreign znode that is not JSON, or JSON without an address, with one warning each', async () => {
    const owner = await rawClient(ALICE)
    await create(owner, `${base}/web/junk`, 'not json at all')
    await create(owner, `${base}/web/10.0.0.1:x`, JSON.stringify({hello: 'world'}))
    const {registry, logs} = open()
    expect((await registry.listInstances('web')).map((i) => i.id)).toEqual(['w1'])
    expect((await registry.listInstances('web')).map((i) => i.id)).toEqual(['w1'])
    expect((await registry.listServices()).find((s) => s.name === 'web')).toMatchObject({instances: 1})
    const warnings = logs.filter((l) => /skipping/.test(l))
    expect(warnings).toHaveLength(2)
    expect(warnings.filter((w) => /skipping \/secure\/web\/junk: it is not JSON/.test(w))).toHaveLength(1)
    expect(
      warnings.filter((w) => /skipping \/secure\/web\/10\.0\.0\.1:x: its port is not a number/.test(w)),
    ).toHaveLength(1)

    // a watch skips them too, with a warning of its own registry
    const watcher = open()
    const snapshot = await firstSnapshot(watcher.registry.watch('web'))
    expect(snapshot).toMatchObject({type: 'snapshot', instances: [{id: 'w1'}]})
    expect(watcher.logs.filter((l) => /skipping \/secure\/web\/junk/.test(l))).toHaveLength(1)
  })
})

describe('svc with ZooKeeper credentials', () => {
  it('registers with --zk-auth and with credentials in the URI, and resolves through either', async () => {
    const byFlag = spawnCli([
      'register',
      'api',
      '--port',
      '9001',
      '--address',
      '127.0.0.1',
      '-b',
      `zk://${address}${base}`,
      '--zk-auth',
      `${ALICE.user}:${ALICE.password}`,
    ])
    const byUri = spawnCli([
      'register',
      'api',
      '--port',
      '9002',
      '--address',
      '127.0.0.1',
      '-b',
      `zk://${ALICE_URI_AUTH}@${address}${base}`,
    ])
    try {
      await Promise.all([waitForOutput(byFlag, /^registered api/), waitForOutput(byUri, /^registered api/)])
      // ZooKeeper shows digest hashes only to a client with ADMIN rights
      const reader = await rawClient(ALICE)
      for (const port of [9001, 9002])
        expect(aclText(await getAcl(reader, `${base}/api/127.0.0.1:${port}`))).toEqual([
          `digest:${digestId(ALICE)}:cdrwa`,
          'world:anyone:r',
        ])
      const resolved = await runCli(['resolve', 'api', '--json', '-b', `zk://${address}${base}`], {
        env: {SVC_ZK_AUTH: `${ALICE.user}:${ALICE.password}`},
      })
      expect(resolved.code).toBe(0)
      expect((JSON.parse(resolved.stdout) as Array<{port: number}>).map((i) => i.port).sort()).toEqual([9001, 9002])
      // the secret never shows: not in what svc printed, not in the argv of a process it started
      for (const text of [resolved.stdout, resolved.stderr]) expect(text).not.toContain(ALICE.password)
    } finally {
      byFlag.kill('SIGTERM')
      byUri.kill('SIGTERM')
      await Promise.all([waitForExit(byFlag), waitForExit(byUri)])
    }
  })

  it('reports a wrong password in one line, with a non-zero exit and no stack', async () => {
    const owner = open({auth: ALICE}).registry
    await owner.register({service: 'locked', id: 'l1', address: '127.0.0.1', port: 9101})
    for (const args of [
      ['register', 'locked', '--port', '9102', '--address', '127.0.0.1', '-b', `zk://alice:wrong-pw@${address}${base}`],
      ['deregister', 'locked', 'l1', '-b', `zk://${address}${base}`, '--zk-auth', 'alice:wrong-pw'],
    ]) {
      const result = await runCli(args)
      expect(result.code).not.toBe(0)
      const lines = result.stderr
        .trim()
        .split('\n')
        .filter((l) => !l.startsWith('svc: '))
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(
        /^Error: (register \/secure\/locked\/127\.0\.0\.1:9102|deregister locked l1) failed: the znode's ACL denies user "alice" \(NO_AUTH\): check the password of --zk-auth/,
      )
      expect(result.stderr).not.toMatch(/^\s+at /m)
      expect(result.stderr + result.stdout).not.toContain('wrong-pw')
    }
  })

  it('resolves past a foreign non-JSON znode with a warning on stderr', async () => {
    const result = await runCli(['resolve', 'web', '--json', '-b', `zk://${address}${base}`])
    expect(result.code).toBe(0)
    expect((JSON.parse(result.stdout) as Array<{id: string}>).map((i) => i.id)).toEqual(['w1'])
    expect(result.stderr.match(/skipping \/secure\/web\/junk: it is not JSON/g)).toHaveLength(1)
  })
})
