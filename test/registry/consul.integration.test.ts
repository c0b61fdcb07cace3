import {type ChildProcess, spawn} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {createServer as createHttpServer, type Server as HttpServer} from 'node:http'
import type {AddressInfo} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {clusterStatus, startMember, stopMember} from '../../src/lib/cluster/index.js'
import {UserError} from '../../src/lib/errors.js'
import {openRegistry} from '../../src/lib/registry/index.js'
import {type HostPort, parseBackend} from '../../src/lib/registry/spec.js'
import type {Health, RegistrationState, Registry, ServiceInstance, WatchEvent} from '../../src/lib/registry/types.js'
import {uniqueService} from '../helpers/backends.js'
import {eventually, ROOT, waitForExit, waitForOutput} from '../helpers/cli.js'
import {hasTestCluster, testCluster, withClusterLock} from '../helpers/clusters.js'
import {consulHttp} from '../helpers/consul-api.js'
import {hostPort, TcpProxy} from '../helpers/tcp-proxy.js'

// Consul-specific behaviour; the contract suite covers what every backend shares.
const uri = hasTestCluster('consul')
  ? testCluster('consul').uri
  : (process.env.SVC_TEST_CONSUL ?? 'consul://127.0.0.1:28500')
const spec = parseBackend(uri)
if (spec.kind !== 'consul') throw new Error(`SVC_TEST_CONSUL is not a consul URI: ${uri}`)
const hosts = spec.hosts
const agent = (h: HostPort): string => `${h.host}:${h.port}`

function open(agents: HostPort[] = hosts, log: string[] = []): Promise<Registry> {
  return openRegistry({kind: 'consul', hosts: agents}, {log: (m) => log.push(m)})
}

async function consulGet<T>(host: HostPort, apiPath: string): Promise<T> {
  return (await consulHttp(host, 'GET', `/v1${apiPath}`)) as T
}

async function consulPut(host: HostPort, apiPath: string, body: unknown): Promise<void> {
  await consulHttp(host, 'PUT', `/v1${apiPath}`, {body})
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => {
    setTimeout(resolve, ms)
  })
}

/** Follows a watch until `done` holds for the state so far; resolves with the time it took. */
async function watchUntil(
  registry: Registry,
  service: string,
  done: (instances: Map<string, ServiceInstance>, event: WatchEvent) => boolean,
  timeoutMs: number,
  events: WatchEvent[] = [],
): Promise<number> {
  const started = Date.now()
  const controller = new AbortController()
  const timer = setTimeout(() => controller.abort(), timeoutMs)
  const state = new Map<string, ServiceInstance>()
  try {
    for await (const event of registry.watch(service, {signal: controller.signal})) {
      events.push(event)
      if (event.type === 'snapshot') for (const i of event.instances) state.set(i.id, i)
      if (event.type === 'added' || event.type === 'changed') state.set(event.instance.id, event.instance)
      if (event.type === 'removed') state.delete(event.instance.id)
      if (done(state, event)) return Date.now() - started
    }
  } finally {
    clearTimeout(timer)
    controller.abort()
  }

  throw new Error(`watch condition not met within ${timeoutMs} ms; events: ${JSON.stringify(events)}`)
}

const healthOf =
  (id: string, health: Health) =>
  (state: Map<string, ServiceInstance>): boolean =>
    state.get(id)?.health === health

/** A test that talks to the first agents directly: none may run while another file stops a member. */
const locked = (fn: () => Promise<void>) => () => withClusterLock('consul', fn)

describe('consul registry', () => {
  let registry: Registry
  let web: HttpServer
  let webStatus = 200

  beforeAll(async () => {
    registry = await open()
    await registry.ping()
    web = createHttpServer((_, res) => {
      res.writeHead(webStatus).end(webStatus === 200 ? 'ok' : 'failing')
    })
    await new Promise<void>((resolve) => {
      web.listen(0, '127.0.0.1', () => resolve())
    })
  })

  afterAll(async () => {
    await registry.close()
    await new Promise<void>((resolve) => {
      web?.close(() => resolve())
    })
  })

  it(
    'registers a native HTTP check that Consul runs: a 500 turns the instance critical',
    locked(async () => {
      const service = uniqueService('native')
      const port = (web.address() as AddressInfo).port
      webStatus = 200
      const handle = await registry.register(
        {service, id: 'n1', address: '127.0.0.1', port},
        {check: {http: `http://127.0.0.1:${port}/health`, intervalMs: 500, timeoutMs: 400, deregisterAfterMs: 60_000}},
      )
      try {
        const checks = await consulGet<Array<{CheckID: string; Type: string}>>(hosts[0]!, `/health/checks/${service}`)
        expect(checks.map((c) => [c.CheckID, c.Type])).toEqual([['service:n1:http', 'http']])
        await watchUntil(registry, service, healthOf('n1', 'passing'), 5000)
        webStatus = 500
        const toCritical = await watchUntil(registry, service, healthOf('n1', 'critical'), 5000)
        console.info(`consul: native HTTP check critical ${toCritical} ms after the endpoint turned 500`)
        expect((await registry.listInstances(service))[0]?.health).toBe('critical')
        webStatus = 200
        await watchUntil(registry, service, healthOf('n1', 'passing'), 5000)
        // setHealth on a native registration: critical is maintenance mode, anything else ends it
        await handle.setHealth('critical', 'drained')
        expect((await registry.listInstances(service))[0]?.health).toBe('critical')
        await handle.setHealth('passing')
        expect((await registry.listInstances(service))[0]?.health).toBe('passing')
      } finally {
        webStatus = 200
        await handle.close()
      }

      expect(await registry.listInstances(service)).toEqual([])
    }),
  )

  it(
    'lets a TTL registration go critical when its heartbeats stop',
    locked(async () => {
      const service = uniqueService('ttl')
      const handle = await registry.register({service, id: 't1', address: '127.0.0.1', port: 7001}, {ttlMs: 2000})
      const checks = await consulGet<Array<{CheckID: string; Type: string; Status: string}>>(
        hosts[0]!,
        `/health/checks/${service}`,
      )
      // liveness is an alias of the process's one owner TTL check, which the refreshes pass
      expect(checks.map((c) => [c.CheckID, c.Type, c.Status])).toEqual([['service:t1:alive', 'alias', 'passing']])
      // heartbeats keep it passing past its TTL
      await pause(3000)
      expect((await registry.listInstances(service))[0]?.health).toBe('passing')
      const stoppedAt = Date.now()
      await handle.close({deregister: false})
      await watchUntil(registry, service, healthOf('t1', 'critical'), 8000)
      const elapsed = Date.now() - stoppedAt
      console.info(`consul: TTL 2 s registration critical ${elapsed} ms after its heartbeats stopped`)
      expect(elapsed).toBeLessThan(2000 + 2500)
      expect((await registry.deregister(service, 't1')).removed).toBe(true)
    }),
  )

  it(
    'marks the instance of a SIGKILLed owner process critical within its TTL',
    locked(async () => {
      const service = uniqueService('killed')
      const dir = mkdtempSync(path.join(tmpdir(), 'svc-consul-owner-'))
      const script = path.join(dir, 'owner.mts')
      writeFileSync(
        script,
        [
          `import {openRegistry} from ${JSON.stringify(path.join(ROOT, 'src/lib/registry/index.ts'))}`,
          `const registry = await openRegistry(${JSON.stringify(uri)})`,
          `await registry.register({service: ${JSON.stringify(service)}, id: 'k1', address: '127.0.0.1', port: 7002}, {ttlMs: 2000})`,
          `console.log('registered')`,
          `setInterval(() => {}, 1000)`,
        ].join('\n'),
      )
      let child: ChildProcess | undefined
      try {
        child = spawn(process.execPath, ['--import', 'tsx', script], {cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe']})
        await waitForOutput(child, /^registered/, 20_000)
        expect((await registry.listInstances(service)).map((i) => i.health)).toEqual(['passing'])
        const killedAt = Date.now()
        child.kill('SIGKILL')
        await waitForExit(child)
        await watchUntil(registry, service, healthOf('k1', 'critical'), 8000)
        const elapsed = Date.now() - killedAt
        console.info(`consul: TTL 2 s owner SIGKILLed, instance critical after ${elapsed} ms`)
        expect(elapsed).toBeLessThan(2000 + 2500)
      } finally {
        if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
        rmSync(dir, {recursive: true, force: true})
        await registry.deregister(service, 'k1')
      }
    }),
  )

  it(
    'keeps the caller’s meta exact and svc’s reserved keys out of it',
    locked(async () => {
      const service = uniqueService('meta')
      /* eslint-disable camelcase -- meta keys as users write them */
      const meta = {
        version: '1.2.3',
        'team.owner': 'payments',
        'a.b.c': 'dots',
        svc_user: 'looks reserved',
        'consul-thing': 'Consul reserves this prefix',
        under_score: 'u',
        x__d: 'escape-like',
        'x._d': 'escape-like too',
        empty: '',
        long: 'v'.repeat(512),
      }
      /* eslint-enable camelcase */
      const source = {containerId: 'abc123', containerName: 'web-1', image: 'busybox:latest', host: 'docker-host'}
      const handle = await registry.register({service, id: 'm1', address: '127.0.0.1', port: 7003, meta, source})
      try {
        const [found] = await registry.listInstances(service)
        expect(found?.meta).toEqual(meta)
        expect(found?.source).toEqual(source)
        const raw = await consulGet<Array<{Service: {Meta: Record<string, string>}}>>(
          hosts[0]!,
          `/health/service/${service}`,
        )
        const stored = raw[0]!.Service.Meta
        for (const key of Object.keys(stored)) expect(key).toMatch(/^[\w-]{1,128}$/)
        expect(stored).toMatchObject({
          version: '1.2.3',
          // eslint-disable-next-line camelcase -- the keys Consul holds
          svc_source_container_id: 'abc123',
          // eslint-disable-next-line camelcase
          svc_k_team_downer: 'payments',
        })
        // svc's own `unknown` health lives in a reserved key too, and stays out of the meta
        await handle.setHealth('unknown')
        const [unknown] = await registry.listInstances(service)
        expect(unknown?.health).toBe('unknown')
        expect(unknown?.meta).toEqual(meta)
        await handle.setHealth('warning')
        expect((await registry.listInstances(service))[0]?.health).toBe('warning')
      } finally {
        await handle.close()
      }

      await expect(
        registry.register({service, address: '127.0.0.1', port: 7004, meta: {big: 'v'.repeat(513)}}),
      ).rejects.toThrow(UserError)
      await expect(
        registry.register({service, address: '127.0.0.1', port: 7004, meta: {['k.'.repeat(60) + 'k']: 'v'}}),
      ).rejects.toThrow(/meta key "k\.k/)
    }),
  )

  it(
    'deregisters an instance that lives in the catalog only (a node without an agent)',
    locked(async () => {
      const service = uniqueService('external')
      const node = `svc-test-external-${Date.now()}`
      await consulPut(hosts[0]!, '/catalog/register', {
        Node: node,
        Address: '127.0.0.9',
        Service: {ID: 'e1', Service: service, Port: 7005},
      })
      try {
        await eventually(async () => (await registry.listInstances(service)).length === 1, 3000)
        expect((await registry.listInstances(service))[0]).toMatchObject({
          id: 'e1',
          address: '127.0.0.9',
          // no check of its own: Consul's answer (the node's checks) stands
          health: 'passing',
        })
        expect((await registry.deregister(service, 'e1')).removed).toBe(true)
        expect(await registry.listInstances(service)).toEqual([])
        expect((await registry.deregister(service, 'e1')).removed).toBe(false)
      } finally {
        await consulPut(hosts[0]!, '/catalog/deregister', {Node: node})
      }
    }),
  )

  it(
    'deregisters an instance registered through another agent',
    locked(async () => {
      const service = uniqueService('elsewhere')
      const owner = await open([hosts[1]!])
      const handle = await owner.register({service, id: 'o1', address: '127.0.0.1', port: 7006})
      try {
        // `registry` talks to hosts[0] first: the instance lives on the agent of hosts[1], whose sync to the
        // catalog may trail the write by a few milliseconds
        await eventually(async () => (await registry.listInstances(service)).length === 1, 2000)
        expect((await registry.deregister(service, 'o1')).removed).toBe(true)
        expect(await registry.listInstances(service)).toEqual([])
        // removed from that agent itself, not only from the catalog (where anti-entropy would bring it back)
        const local = await consulGet<Record<string, unknown>>(hosts[1]!, '/agent/services')
        expect(Object.keys(local)).not.toContain('o1')
        expect((await registry.deregister(service, 'o1')).removed).toBe(false)
      } finally {
        await handle.close({deregister: false})
        await owner.close()
      }
    }),
  )

  it(
    'fails over to the next agent when the first stops answering, and moves the registration there',
    locked(async () => {
      const proxy = await new TcpProxy(agent(hosts[0]!)).start()
      const proxyHost = hostPort(proxy.address)
      const log: string[] = []
      const states: Array<[RegistrationState, string]> = []
      const agents = [proxyHost, ...(hosts.length > 1 ? hosts.slice(1) : hosts)]
      const failing = await open(agents, log)
      const service = uniqueService('failover')
      try {
        const handle = await failing.register(
          {service, id: 'f1', address: '127.0.0.1', port: 7007},
          {ttlMs: 3000, onStateChange: (state, detail) => states.push([state, detail])},
        )
        const events: WatchEvent[] = []
        const watching = watchUntil(
          failing,
          service,
          (_, event) =>
            event.type === 'status' && event.state === 'connected' && event.detail !== `agent ${proxy.address}`,
          20_000,
          events,
        )
        await eventually(async () => events.length > 0, 5000)
        const cutAt = Date.now()
        proxy.cut()
        const listed = await failing.listInstances(service)
        const readMs = Date.now() - cutAt
        expect(listed.map((i) => [i.id, i.health])).toEqual([['f1', 'passing']])
        await eventually(async () => states.some(([s]) => s === 'restored'), 10_000)
        const movedMs = Date.now() - cutAt
        await watching
        const watchMs = Date.now() - cutAt
        console.info(
          `consul: after cutting the first agent: read in ${readMs} ms, registration moved after ${movedMs} ms, watch on the next agent by ${watchMs} ms`,
        )
        expect(states.map(([s]) => s)).toEqual(['lost', 'restored'])
        expect(states[1]![1]).toContain(agent(agents[1]!))
        expect(events.some((e) => e.type === 'status' && e.state === 'reconnecting')).toBe(true)
        expect(log.filter((line) => line.includes('switching to'))).toHaveLength(1)
        // past the TTL the copy left behind on the first agent is critical; svc shows the live one, once
        await pause(4000)
        expect((await failing.listInstances(service)).map((i) => [i.id, i.health])).toEqual([['f1', 'passing']])
        // once the first agent answers again, the copy left there is removed
        proxy.heal()
        if (hosts.length > 1) {
          await eventually(async () => {
            const raw = await consulGet<Array<{Node: {Node: string}}>>(hosts[0]!, `/health/service/${service}`)
            return raw.length === 1
          }, 8000)
        }

        await handle.close()
        expect(await failing.listInstances(service)).toEqual([])
      } finally {
        await failing.close()
        await proxy.stop()
      }
    }),
  )

  // no other test may stop a member while this one expects every member up
  it('reports the cluster: members by node name with their HTTP addresses, and the leader', () =>
    withClusterLock('consul', async () => {
      const info = await registry.cluster()
      expect(info.backend).toBe('consul')
      expect(info.members.length).toBeGreaterThanOrEqual(hosts.length)
      for (const h of hosts) expect(info.members.map((m) => m.address)).toContain(agent(h))
      expect(info.members.filter((m) => m.role === 'leader')).toHaveLength(1)
      expect(info.leader).toBe(info.members.find((m) => m.role === 'leader')?.address)
      expect(info.members.every((m) => m.reachable)).toBe(true)
    }))

  it('names every agent when none answers: at once when they refuse, after the connect timeout when they hang', async () => {
    const refused = await openRegistry(
      {
        kind: 'consul',
        hosts: [
          {host: '127.0.0.1', port: 1},
          {host: '127.0.0.1', port: 2},
        ],
      },
      {connectTimeoutMs: 1000},
    )
    const proxies = await Promise.all(hosts.slice(0, 2).map((h) => new TcpProxy(agent(h)).start()))
    for (const p of proxies) p.stall()
    const hanging = await openRegistry(
      {kind: 'consul', hosts: proxies.map((p) => hostPort(p.address))},
      {connectTimeoutMs: 1000},
    )
    try {
      const started = Date.now()
      await expect(refused.ping()).rejects.toThrow(
        /^cannot reach consul at 127\.0\.0\.1:1,127\.0\.0\.1:2 \(connection refused, after \d+ms\)$/,
      )
      expect(Date.now() - started).toBeLessThan(1000)
      const names = proxies.map((p) => p.address).join(',')
      await expect(hanging.ping()).rejects.toThrow(`cannot reach consul at ${names} (no answer after 1s)`)
    } finally {
      await refused.close()
      await hanging.close()
      await Promise.all(proxies.map((p) => p.stop()))
    }
  })

  it('keeps a registration alive when its agent is killed', async () => {
    await withClusterLock('consul', async () => {
      const {manifest} = testCluster('consul')
      const status = await clusterStatus(manifest)
      const follower = status.find((m) => m.role === 'follower')!
      const ordered = [follower, ...status.filter((m) => m.index !== follower.index)].map((m) => {
        const [host, port] = m.address.split(':')
        return {host: host!, port: Number(port)}
      })
      const states: RegistrationState[] = []
      const moving = await open(ordered)
      const service = uniqueService('agentkill')
      try {
        const handle = await moving.register(
          {service, id: 'a1', address: '127.0.0.1', port: 7008},
          {ttlMs: 3000, onStateChange: (state) => states.push(state)},
        )
        const killedAt = Date.now()
        await stopMember(manifest, follower.index, 'SIGKILL')
        await eventually(async () => states.includes('restored'), 10_000)
        console.info(
          `consul: agent SIGKILLed, registration restored on the next agent after ${Date.now() - killedAt} ms`,
        )
        await eventually(async () => {
          const list = await moving.listInstances(service)
          return list.length === 1 && list[0]!.health === 'passing'
        }, 10_000)
        const info = await moving.cluster()
        expect(info.members.find((m) => m.address === follower.address)?.reachable).toBe(false)
        await handle.close()
        expect(await moving.listInstances(service)).toEqual([])
      } finally {
        await moving.close()
        await startMember(manifest, follower.index)
      }
    })
  })
})
