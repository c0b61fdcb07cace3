import {Agent, request} from 'node:http'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {runProxy, type RunningProxy} from '../../src/lib/proxy/index.js'
import {openRegistry} from '../../src/lib/registry/index.js'
import type {RegistrationHandle, Registry} from '../../src/lib/registry/types.js'
import {testBackends, uniqueService} from '../helpers/backends.js'
import {eventually} from '../helpers/cli.js'
import {startUpstream, type TestUpstream} from '../helpers/upstream.js'

const CLIENTS = 50
/** Requests in all; two instances leave once KILL_AT are answered. Bounded in time too: LIMIT_MS. */
const REQUESTS = 3000
const KILL_AT = 1000
const LIMIT_MS = 20_000

async function get(agent: Agent, url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, {agent}, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.setTimeout(5000, () => req.destroy())
    req.on('error', () => resolve(0))
    req.end()
  })
}

// Issue 14 case 11: two healthy instances of four leave at once (deregistered and stopped) under 50 kept-alive
// clients, after 1,000 of 3,000 requests; idempotent requests caught on their closing connections are retried on the instances that stay.
describe('svc proxy under churn (local backend)', () => {
  const [backend] = testBackends(['local'])
  const service = uniqueService('churn')
  let registry: Registry
  let running: RunningProxy
  const upstreams: TestUpstream[] = []
  const handles: RegistrationHandle[] = []

  beforeAll(async () => {
    registry = await openRegistry(backend!.uri)
    for (let i = 0; i < 4; i++) {
      const u = await startUpstream(`C${i}`)
      upstreams.push(u)
      handles.push(await registry.register({service, id: `c${i}`, address: '127.0.0.1', port: u.port}))
    }

    running = await runProxy(registry, {
      host: '127.0.0.1',
      port: 0,
      strategy: 'round-robin',
      connectTimeoutMs: 1000,
      timeoutMs: 5000,
      log() {},
    })
    await eventually(async () => running.proxy.table.services.get(service)?.available === 4, 5000)
  })

  afterAll(async () => {
    await running?.stop(1000)
    await Promise.allSettled(handles.map((h) => h.close()))
    await Promise.allSettled(upstreams.map((u) => u.kill()))
    await registry?.close()
  })

  it('answers every request 200 while two instances leave at once', async () => {
    const agent = new Agent({keepAlive: true, maxSockets: CLIENTS})
    const url = `http://${running.address}/${service}/`
    const statuses = new Map<number, number>()
    const deadline = Date.now() + LIMIT_MS
    let sent = 0
    let done = 0
    let afterKill = 0
    let killed: Promise<unknown> | undefined
    await Promise.all(
      Array.from({length: CLIENTS}, async () => {
        while (sent < REQUESTS && Date.now() < deadline) {
          sent++
          const status = await get(agent, url)
          statuses.set(status, (statuses.get(status) ?? 0) + 1)
          if (killed !== undefined) afterKill++
          // as a container stop does it: the process goes and its registration with it, in no set order
          if (++done === KILL_AT)
            killed = Promise.all([handles[0]!.close(), handles[1]!.close(), upstreams[0]!.kill(), upstreams[1]!.kill()])
        }
      }),
    )
    await killed
    agent.destroy()
    const total = [...statuses.values()].reduce((a, b) => a + b, 0)
    console.log(
      `churn: ${total} requests (${afterKill} after the kill), statuses ${JSON.stringify(Object.fromEntries(statuses))}`,
    )
    expect(afterKill, 'requests answered while and after the instances left').toBeGreaterThan(500)
    expect(Object.fromEntries(statuses)).toEqual({200: total})
  })
})
