import {request} from 'undici'
import {afterAll, describe, expect, it} from 'vitest'

import {UserError} from '../../src/lib/errors.js'
import {createProxyServer, selectEngine} from '../../src/lib/proxy/engine.js'
import {checkInternals} from '../../src/lib/proxy/internals.js'
import {startUpstream, type TestUpstream} from '../helpers/upstream.js'

const neverRun = async (): Promise<string> => {
  throw new Error('the check ran')
}

const options = {
  host: '127.0.0.1',
  port: 0,
  strategy: 'round-robin' as const,
  connectTimeoutMs: 1000,
  timeoutMs: 5000,
}

describe('proxy engine selection', () => {
  const upstreams: TestUpstream[] = []
  afterAll(async () => {
    await Promise.allSettled(upstreams.map((u) => u.kill()))
  })

  it("finds this Node's internals as the llhttp engine expects them", async () => {
    expect(await checkInternals()).toBeUndefined()
    expect(await selectEngine(undefined, {env: ''})).toBe('llhttp')
  })

  it('falls back to the node:http engine with one warning line when the internals check fails, and it serves', async () => {
    const logs: string[] = []
    const {engine, proxy} = await createProxyServer(
      {...options, log: (line) => logs.push(line)},
      {env: '', check: async () => 'HTTPParser parsed a request as "nothing"'},
    )
    expect(engine).toBe('node-http')
    expect(logs).toHaveLength(1)
    expect(logs[0]).toMatch(/^warning: Node\.js v\d+.*HTTPParser parsed a request as "nothing".*node:http engine/)
    const upstream = await startUpstream('fallback-a')
    upstreams.push(upstream)
    proxy.table.apply({
      type: 'snapshot',
      instances: [
        {service: 'web', id: 'a', address: '127.0.0.1', port: upstream.port, tags: [], meta: {}, health: 'passing'},
      ],
    })
    const address = await proxy.listen()
    try {
      const res = await request(`http://${address}/web/user?id=7`)
      expect(res.statusCode).toBe(200)
      expect(await res.body.text()).toBe("It's user 7.")
      const unknown = await request(`http://${address}/nope/`)
      await unknown.body.dump()
      expect(unknown.statusCode).toBe(404)
    } finally {
      expect(await proxy.drain(1000)).toBe(0)
    }
  })

  it('obeys SVC_PROXY_ENGINE without checking, and refuses a name it does not know', async () => {
    expect(await selectEngine(undefined, {env: 'node-http', check: neverRun})).toBe('node-http')
    expect(await selectEngine(undefined, {env: 'llhttp', check: neverRun})).toBe('llhttp')
    await expect(selectEngine(undefined, {env: 'fast', check: neverRun})).rejects.toThrow(UserError)
  })
})
