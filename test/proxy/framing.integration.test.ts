import {writeFileSync} from 'node:fs'
import {setTimeout as sleep} from 'node:timers/promises'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {PROXY_ENGINE_ENV, runProxy, type RunningProxy} from '../../src/lib/proxy/index.js'
import {openRegistry} from '../../src/lib/registry/index.js'
import type {RegistrationHandle, Registry} from '../../src/lib/registry/types.js'
import {testBackends} from '../helpers/backends.js'
import {eventually} from '../helpers/cli.js'
import {startNginx, type TestNginx} from '../helpers/nginx.js'
import {type RawConversation, rawExchange} from '../helpers/raw-http.js'
import {type RecordingUpstream, startRecordingUpstream} from '../helpers/recording-upstream.js'
import {CASES, type FramingCase} from './framing-cases.js'

/** How a conversation ended, for the table: the statuses, then whether the server closed. */
function outcome(c: RawConversation): string {
  const statuses = c.responses.map((r) => r.status).join(', ')
  const answer = statuses || (c.raw.length > 0 ? 'bytes without a status line' : 'no answer')
  return answer + (c.closed ? ', closed' : '')
}

/** What reached an upstream in a case, in a few words. */
function reached(up: RecordingUpstream): string {
  const requests = up.requests()
  if (requests.length === 0) return up.bytes().length > 0 ? 'an unfinished request (dropped)' : 'nothing'
  return requests.map((r) => `${r.method} ${r.url.length > 24 ? r.url.slice(0, 24) + '…' : r.url}`).join('; ')
}

// Every raw-socket case of issue 14 and those that held, against svc proxy and nginx 1.22 in the same run, each in
// front of its own recording upstream. svc's answer is asserted; nginx's is recorded beside it (SVC_FRAMING_TABLE
// names a file to write the table to, as docs/security.md shows it).
// engine-node-http.integration.test.ts runs it again with SVC_PROXY_ENGINE=node-http
describe(`svc proxy framing at the edge, beside nginx (local backend, ${process.env[PROXY_ENGINE_ENV] ?? 'auto'} engine)`, () => {
  const [backend] = testBackends(['local'])
  let registry: Registry
  let running: RunningProxy
  let nginx: TestNginx
  let svcUp: RecordingUpstream
  let nginxUp: RecordingUpstream
  let handle: RegistrationHandle
  const rows: string[] = []

  beforeAll(async () => {
    svcUp = await startRecordingUpstream()
    nginxUp = await startRecordingUpstream()
    registry = await openRegistry(backend!.uri)
    handle = await registry.register({service: 'good', id: 'good-1', address: '127.0.0.1', port: svcUp.port})
    running = await runProxy(registry, {
      host: '127.0.0.1',
      port: 0,
      strategy: 'round-robin',
      connectTimeoutMs: 1000,
      timeoutMs: 2000,
      limits: {headersTimeoutMs: 3000, bodyTimeoutMs: 3000, idleTimeoutMs: 2000},
      log() {},
    })
    nginx = await startNginx(nginxUp.port, 2)
    await eventually(async () => running.proxy.table.services.get('good')?.available === 1, 5000)
  })

  afterAll(async () => {
    await running?.stop(1000)
    await nginx?.stop()
    await handle?.close()
    await registry?.close()
    await svcUp?.close()
    await nginxUp?.close()
    // the table in docs/security.md is the default engine's
    const file = running?.engine === 'llhttp' ? process.env.SVC_FRAMING_TABLE : undefined
    if (file) {
      const head =
        "| case | issue | sent | svc proxy | nginx 1.22 | reached svc's upstream |\n| --- | --- | --- | --- | --- | --- |\n"
      writeFileSync(file, head + rows.join('\n') + '\n')
    }
  })

  const run = async (c: FramingCase): Promise<void> => {
    const want = running.engine === 'node-http' && c.nodeHttp ? {...c, check: undefined, ...c.nodeHttp} : c
    svcUp.reset()
    nginxUp.reset()
    const [svc, ngx] = await Promise.all([
      rawExchange(running.address, c.send, want.opts),
      rawExchange(nginx.address, c.send, c.opts),
    ])
    // what is still on its way upstream arrives before the upstream's record is read
    await sleep(100)
    rows.push(`| ${c.id} | ${c.issue} | ${c.what} | ${outcome(svc)} | ${outcome(ngx)} | ${reached(svcUp)} |`)
    expect(
      svc.responses.map((r) => r.status),
      svc.raw.slice(0, 300),
    ).toEqual(want.svc)
    if (c.closes) expect(svc.closed, 'svc closes the connection').toBe(true)
    if (c.forwards !== undefined) expect(svcUp.requests().length, 'requests the upstream parsed').toBe(c.forwards)
    const bytes = svcUp.bytes()
    for (const text of c.never ?? []) expect(bytes, `"${text}" reached the upstream`).not.toContain(text)
    const targets = svcUp.requests().map((r) => r.url)
    for (const target of c.neverRequest ?? []) expect(targets, 'requests the upstream parsed').not.toContain(target)
    want.check?.(svc, svcUp)
  }

  for (const c of CASES) it(`${c.issue === 'held' ? 'held' : `#${c.issue}`} ${c.id}: ${c.what}`, () => run(c))

  it("never hands a smuggled request's answer to another client", async () => {
    svcUp.reset()
    const smuggle = CASES.find((c) => c.id === 'connection-content-length-smuggle')!
    const others = Array.from({length: 20}, (_, i) =>
      rawExchange(running.address, [`GET /good/client-${i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`]),
    )
    const attacks = Array.from({length: 5}, () => rawExchange(running.address, smuggle.send))
    const answers = await Promise.all(others)
    await Promise.all(attacks)
    for (const [i, answer] of answers.entries()) {
      expect(answer.responses).toHaveLength(1)
      expect(JSON.parse(answer.responses[0]!.body).url).toBe(`/client-${i}`)
    }

    expect(svcUp.requests().map((r) => r.url)).not.toContain('/secret')
  })
})
