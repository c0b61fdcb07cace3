import {afterAll, describe, expect, it} from 'vitest'

import type {DriverEvent, DriverWatchSink, OwnedRecord, ReadResult} from '../../src/lib/registry/core/driver.js'
import {isSkipped} from '../../src/lib/registry/core/driver.js'
import {createDriver} from '../../src/lib/registry/consul/index.js'
import {type HostPort, parseBackend} from '../../src/lib/registry/spec.js'
import {uniqueService} from '../helpers/backends.js'
import {eventually, runCli} from '../helpers/cli.js'
import {hasTestCluster, testCluster, withClusterLock} from '../helpers/clusters.js'
import {consulHttp} from '../helpers/consul-api.js'
import {hostPort, TcpProxy} from '../helpers/tcp-proxy.js'

// What the Consul driver itself supplies under the core: owner in the meta, foreign records, fail-over, errors.
const uri = hasTestCluster('consul')
  ? testCluster('consul').uri
  : (process.env.SVC_TEST_CONSUL ?? 'consul://127.0.0.1:28500')
const spec = parseBackend(uri)
if (spec.kind !== 'consul') throw new Error(`not a consul URI: ${uri}`)
const hosts = spec.hosts
const owner = {host: 'test-host', pid: process.pid, nonce: 'n0nce'}

function record(service: string, id: string, port: number): OwnedRecord {
  return {
    instance: {service, id, address: '127.0.0.1', port, tags: ['t'], meta: {'a.b': 'c'}, health: 'passing'},
    owner,
    ttlMs: 3000,
    refreshMs: 1000,
  }
}

function driverOn(agents: HostPort[], log: string[] = []) {
  return createDriver({kind: 'consul', hosts: agents}, {log: (m) => log.push(m), connectTimeoutMs: 5000})
}

/** Collects what a driver watch publishes. */
function collector(): DriverWatchSink & {batches: ReadResult[][]} {
  const batches: ReadResult[][] = []
  return {
    batches,
    publish(records) {
      batches.push([...records])
    },
    status() {},
    fail(error) {
      throw error
    },
    closed: false,
  }
}

/** Every test here talks to the first agent: none may run while another file stops a member. */
const locked = (fn: () => Promise<void>) => () => withClusterLock('consul', fn)

const put = (apiPath: string, body: unknown): Promise<unknown> => consulHttp(hosts[0]!, 'PUT', `/v1${apiPath}`, {body})

describe('consul driver', () => {
  const driver = driverOn(hosts)
  afterAll(() => driver.close())

  it(
    'writes the owner into the service meta and reads it back; other tools’ records are foreign but readable',
    locked(async () => {
      const service = uniqueService('owned')
      const binding = await driver.write(record(service, 'o1', 7501))
      // registrator's layout: ID host:container:port, tags, no meta
      await put('/agent/service/register', {
        Name: service,
        ID: 'box:web-1:80',
        Address: '127.0.0.1',
        Port: 7502,
        Tags: ['r'],
      })
      try {
        const records = await eventually(async () => {
          const list = await driver.listRecords(service)
          return list.length === 2 ? list : undefined
        }, 3000)
        const ours = records.find((r) => !isSkipped(r) && r.instance.id === 'o1')
        expect(ours).toMatchObject({owner, instance: {meta: {'a.b': 'c'}, tags: ['t'], health: 'passing'}})
        const theirs = records.find((r) => !isSkipped(r) && r.instance.id === 'box:web-1:80')
        expect(theirs).toMatchObject({instance: {port: 7502, tags: ['r'], meta: {}}})
        expect(theirs).not.toHaveProperty('owner')
        expect(await binding.refresh()).toBe('ok')
      } finally {
        await put('/agent/service/deregister/box:web-1:80', undefined)
        await driver.remove(service, 'o1')
        await binding.release()
      }
    }),
  )

  it(
    'says missing when someone removed the service behind the binding',
    locked(async () => {
      const service = uniqueService('missing')
      const binding = await driver.write(record(service, 'm1', 7503))
      expect(await driver.remove(service, 'm1')).toBe(true)
      expect(await binding.refresh()).toBe('missing')
      expect(await driver.read(service, 'm1')).toBeUndefined()
      const again = await driver.write(record(service, 'm1', 7503))
      expect(await driver.read(service, 'm1')).toMatchObject({owner, instance: {id: 'm1'}})
      await driver.remove(service, 'm1')
      await again.release()
    }),
  )

  it(
    'skips a service named `a/b` by another tool, in listings and in the watch of everything, with one warning',
    locked(async () => {
      const id = `c-bad-${Date.now().toString(36)}`
      const good = uniqueService('good')
      await put('/agent/service/register', {Name: 'a/b', ID: id, Address: '127.0.0.1', Port: 46_933})
      await put('/agent/service/register', {Name: good, ID: `${id}-good`, Address: '127.0.0.1', Port: 46_934})
      const log: string[] = []
      const reader = driverOn(hosts, log)
      const sink = collector()
      const stop = reader.watch(undefined, sink)
      try {
        await eventually(async () => sink.batches.length > 0, 5000)
        const names = (await reader.listServices()).map((s) => s.name)
        expect(names).not.toContain('a/b')
        expect(names).toContain(good)
        expect(log.filter((line) => line.includes('a/b'))).toEqual([expect.stringMatching(/^skipping a\/b: /)])
        // the CLI lists the rest and warns once, exit 0
        const listed = await runCli(['resolve', '--json', '-b', uri], {timeoutMs: 30_000})
        expect(listed.code, listed.stderr).toBe(0)
        expect(listed.stdout).toContain(good)
        expect(listed.stderr.split('\n').filter((line) => line.includes('a/b'))).toHaveLength(1)
      } finally {
        stop()
        await reader.close()
        await put(`/agent/service/deregister/${id}`, undefined)
        await put(`/agent/service/deregister/${id}-good`, undefined)
      }
    }),
  )

  it(
    'fails fast, saying so, when every agent refuses or is not found',
    locked(async () => {
      const refused = driverOn([
        {host: '127.0.0.1', port: 1},
        {host: '127.0.0.1', port: 2},
      ])
      const unknown = driverOn([{host: 'no-such-agent.invalid', port: 8500}])
      const firstRefused = driverOn([{host: '127.0.0.1', port: 1}, ...hosts])
      try {
        let started = Date.now()
        await expect(refused.ping()).rejects.toThrow(
          /^cannot reach consul at 127\.0\.0\.1:1,127\.0\.0\.1:2 \(connection refused, after/,
        )
        expect(Date.now() - started).toBeLessThan(1000)
        started = Date.now()
        await expect(unknown.listRecords('web')).rejects.toThrow(/\(host not found, after/)
        expect(Date.now() - started).toBeLessThan(2000)
        // a first agent that refuses is passed at once, not after the hedge delay
        started = Date.now()
        await firstRefused.listRecords('web')
        expect(Date.now() - started).toBeLessThan(350)
      } finally {
        await refused.close()
        await unknown.close()
        await firstRefused.close()
      }
    }),
  )

  it(
    'with the first agent frozen, a read answers from the next one at once and remembers it',
    locked(async () => {
      const proxy = await new TcpProxy(`${hosts[0]!.host}:${hosts[0]!.port}`).start()
      const frozen = driverOn([hostPort(proxy.address), ...hosts.slice(1)])
      const service = uniqueService('frozen')
      try {
        proxy.stall()
        const times: number[] = []
        for (let i = 0; i < 3; i++) {
          const started = Date.now()
          await frozen.listRecords(service)
          times.push(Date.now() - started)
        }

        console.info(`consul: reads with the first agent frozen took ${times.join(', ')} ms`)
        expect(times[0]).toBeLessThan(1500)
        expect(Math.max(...times.slice(1))).toBeLessThan(400)
      } finally {
        await frozen.close()
        await proxy.stop()
      }
    }),
  )

  it(
    'moves the next write to the next agent when the one holding the binding is cut, and says so once',
    locked(async () => {
      const proxy = await new TcpProxy(`${hosts[0]!.host}:${hosts[0]!.port}`).start()
      const events: DriverEvent[] = []
      const moving = driverOn([hostPort(proxy.address), ...hosts.slice(1)])
      const off = moving.onEvent((event) => events.push(event))
      const service = uniqueService('cut')
      try {
        const first = await moving.write(record(service, 'c1', 7504))
        proxy.cut()
        // its agent is gone while another answers: the record is missing, to be written again
        expect(await first.refresh()).toBe('missing')
        expect(events.map((e) => e.type)).toEqual(['member-changed'])
        const second = await moving.write(record(service, 'c1', 7504))
        expect(await second.refresh()).toBe('ok')
        const local = (await consulHttp(hosts[1]!, 'GET', '/v1/agent/services')) as Record<string, unknown>
        expect(Object.keys(local)).toContain('c1')
        await second.release()
      } finally {
        off()
        proxy.heal()
        await moving.remove(service, 'c1')
        await moving.close()
        await proxy.stop()
      }
    }),
  )
})
