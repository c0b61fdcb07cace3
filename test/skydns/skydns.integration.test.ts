import type {ChildProcess} from 'node:child_process'

import type {Etcd3} from 'etcd3'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {skydnsKey} from '../../src/lib/skydns/index.js'
import {testBackends, uniqueService} from '../helpers/backends.js'
import {eventually, runCli, spawnCli, waitForExit, waitForOutput} from '../helpers/cli.js'
import {acquireDockerLock, ensureTestImage, TestContainers} from '../helpers/docker.js'
import {rawClient} from '../helpers/etcd.js'

const WAIT_MS = 10_000

describe('svc agent --skydns on etcd', () => {
  const [backend] = testBackends(['etcd'])
  const hosts = backend!.uri.replace(/^etcd:\/\//, '').replace(/\/.*$/, '')
  const prefix = backend!.uri.replace(/^etcd:\/\/[^/]+/, '')
  const layout = {prefix: `/skydns-${uniqueService('t')}`, domain: 'skydns.local'}
  const containers = new TestContainers('svcsky')
  let etcd: Etcd3
  let agent: ChildProcess | undefined
  let release: (() => void) | undefined

  /** The SkyDNS keys under one service, with their values and leases, read through etcd's own client. */
  const skydnsKeys = async (service: string): Promise<{key: string; value: unknown; lease: string}[]> => {
    const base = skydnsKey(layout, service, 'x').replace(/x$/, '')
    const {kvs} = await etcd.getAll().prefix(base).exec()
    return kvs.map((kv) => ({
      key: kv.key.toString(),
      value: JSON.parse(kv.value.toString()) as unknown,
      lease: kv.lease,
    }))
  }

  const leaseOf = async (service: string): Promise<string | undefined> => {
    const {kvs} = await etcd.getAll().prefix(`${prefix}/${service}/`).exec()
    return kvs[0]?.lease
  }

  beforeAll(async () => {
    // the agent test restarts the daemon: this test's containers must not be stopped by that meanwhile
    release = await acquireDockerLock()
    await ensureTestImage()
    etcd = rawClient(hosts.split(','))
    agent = spawnCli([
      'agent',
      '-b',
      backend!.uri,
      '--ip',
      '127.0.0.1',
      '--hostname',
      'svcsky',
      '--ttl',
      '2s',
      '--json',
      '--skydns',
      '--skydns-prefix',
      layout.prefix,
    ])
    await waitForOutput(agent, /"type":"docker","state":"connected"/, 20_000)
  })

  afterAll(async () => {
    if (agent && agent.exitCode === null && agent.signalCode === null) {
      agent.kill('SIGTERM')
      await waitForExit(agent, 15_000).catch(() => agent?.kill('SIGKILL'))
    }

    await containers.cleanup()
    await etcd
      ?.delete()
      .prefix(layout.prefix)
      .exec()
      .catch(() => {})
    etcd?.close()
    release?.()
  })

  it('writes {host, port, ttl} at /<prefix>/<reversed domain>/<service>/<id> on the instance lease, and removes it with the container', async () => {
    const service = uniqueService('sky')
    const container = await containers.run({name: 'a', env: {SERVICE_NAME: service}})
    const port = await containers.hostPort(container)
    const [record] = await eventually(async () => {
      const keys = await skydnsKeys(service)
      return keys.length === 1 ? keys : undefined
    }, WAIT_MS)
    expect(record!.key).toMatch(new RegExp(`^${layout.prefix}/local/skydns/${service}/[a-z\\d-]+$`))
    expect(record!.value).toEqual({host: '127.0.0.1', port, ttl: 10})
    expect(record!.lease).not.toBe('0')
    expect(record!.lease).toBe(await leaseOf(service))
    await containers.stop(container)
    await eventually(async () => (await skydnsKeys(service)).length === 0, WAIT_MS)
  })

  it('lets the record vanish with the lease when the agent dies without deregistering', async () => {
    const service = uniqueService('sky')
    await containers.run({name: 'b', env: {SERVICE_NAME: service}})
    await eventually(async () => (await skydnsKeys(service)).length === 1, WAIT_MS)
    agent!.kill('SIGKILL')
    await waitForExit(agent!, 5000)
    // the lease is 2 s (--ttl): etcd drops it, and both keys with it
    await eventually(
      async () => (await skydnsKeys(service)).length === 0 && (await leaseOf(service)) === undefined,
      WAIT_MS,
    )
  })

  it('refuses --skydns on another backend', async () => {
    // a loaded machine takes seconds to start a CLI process: the bound is on the process, not the refusal
    const result = await runCli(['agent', '-b', testBackends(['local'])[0]!.uri, '--skydns'], {timeoutMs: 40_000})
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/--skydns needs an etcd backend/)
  })
})
