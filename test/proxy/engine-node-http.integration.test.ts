import {request} from 'undici'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {openRegistry} from '../../src/lib/registry/index.js'
import type {RegistrationHandle, Registry} from '../../src/lib/registry/types.js'
import {runProxy, type RunningProxy} from '../../src/lib/proxy/index.js'
import {testBackends, uniqueService} from '../helpers/backends.js'
import {eventually} from '../helpers/cli.js'
import {startUpstream, type TestUpstream} from '../helpers/upstream.js'

// The proxy suites again, on the engine on public APIs (what svc falls back to when Node's internals move);
// edge.integration.test.ts runs on both engines itself, and soak.integration.test.ts (20 s) on the default only.
process.env.SVC_PROXY_ENGINE = 'node-http'
await import('./proxy.integration.test.js')
await import('./abuse.integration.test.js')
await import('./framing.integration.test.js')
await import('./churn.integration.test.js')

describe('svc proxy on the node:http engine: drain', () => {
  const [backend] = testBackends(['local'])
  let registry: Registry
  let running: RunningProxy
  let upstream: TestUpstream
  let handle: RegistrationHandle
  const service = uniqueService('drain')

  beforeAll(async () => {
    registry = await openRegistry(backend!.uri)
    upstream = await startUpstream('drain-1')
    handle = await registry.register({service, id: 'drain-1', address: '127.0.0.1', port: upstream.port})
    running = await runProxy(registry, {
      host: '127.0.0.1',
      port: 0,
      strategy: 'round-robin',
      connectTimeoutMs: 1000,
      timeoutMs: 5000,
      log() {},
    })
    await eventually(async () => running.proxy.table.services.get(service)?.available === 1, 5000)
  })

  afterAll(async () => {
    await handle?.close()
    await upstream?.kill()
    await registry?.close()
  })

  it('runs on the node:http engine, lets a slow request finish, then refuses connections', async () => {
    expect(running.engine).toBe('node-http')
    const slow = request(`http://${running.address}/${service}/slow?ms=400`)
    await eventually(async () => running.proxy.active === 1, 2000)
    const cut = await running.stop(3000)
    const res = await slow
    expect(res.statusCode).toBe(200)
    expect(res.headers.connection).toBe('close')
    expect(await res.body.text()).toBe('slow')
    expect(cut).toBe(0)
    await expect(request(`http://${running.address}/${service}/`)).rejects.toThrow()
  })
})
