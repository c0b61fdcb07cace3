import type {ChildProcess} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {request} from 'node:http'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterEach, describe, expect, it} from 'vitest'

import {openRegistry} from '../../src/lib/registry/index.js'
import type {Registry} from '../../src/lib/registry/types.js'
import {testBackends, uniqueService} from '../helpers/backends.js'
import {eventually, ROOT, spawnCli, waitForExit} from '../helpers/cli.js'
import {hasTestCluster} from '../helpers/clusters.js'
import {type PrivateNginx, startPrivateNginx} from '../helpers/nginx.js'
import {startUpstream, type TestUpstream} from '../helpers/upstream.js'

const EXAMPLE = path.join(ROOT, 'examples/nginx/upstreams.conf.hbs')
const DOMAIN = 'svc.test'

type Event = Record<string, unknown> & {type: string}

/** The NDJSON events of a `svc template --json` process, and its stderr. */
function collect(child: ChildProcess): {events: Event[]; stderr: () => string} {
  const events: Event[] = []
  let buffer = ''
  let stderr = ''
  child.stdout!.on('data', (d: Buffer) => {
    buffer += d.toString()
    const lines = buffer.split('\n')
    buffer = lines.pop()!
    for (const line of lines) if (line) events.push(JSON.parse(line) as Event)
  })
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  return {events, stderr: () => stderr}
}

/**
 * One GET through nginx on a new connection, by host name: the body, or what failed. A new connection each time:
 * a reload closes idle kept-alive client connections, and a request racing that close sees a reset (once in two runs
 * with a kept-alive client here), which browsers and most clients retry but Node's http does not (docs/template.md).
 */
function get(port: number, host: string): Promise<{ok: boolean; body: string}> {
  return new Promise((resolve) => {
    const req = request({host: '127.0.0.1', port, path: '/', headers: {host}, agent: false, timeout: 3000}, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => {
        body += d.toString()
      })
      res.on('end', () =>
        resolve({ok: res.statusCode === 200, body: res.statusCode === 200 ? body : `${res.statusCode}`}),
      )
    })
    req.on('timeout', () => req.destroy(new Error('timed out')))
    req.on('error', (error) => resolve({ok: false, body: error.message}))
    req.end()
  })
}

/** Requests one after another until stopped, bounded (20,000 requests or 40 s); every answer in order. */
function requestLoop(port: number, host: string): {answers: string[]; failures: string[]; stop: () => Promise<void>} {
  const answers: string[] = []
  const failures: string[] = []
  const state = {stopped: false}
  const deadline = Date.now() + 40_000
  const done = (async () => {
    while (!state.stopped && answers.length + failures.length < 20_000 && Date.now() < deadline) {
      const {ok, body} = await get(port, host)
      if (ok) answers.push(body)
      else failures.push(`${new Date().toISOString()} ${body}`)
    }
  })()
  return {
    answers,
    failures,
    async stop() {
      state.stopped = true
      await done
    },
  }
}

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const clean of cleanups.splice(0).reverse()) await clean()
})

function stopOnExit(child: ChildProcess): void {
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      await waitForExit(child, 5000).catch(() => child.kill('SIGKILL'))
    }
  })
}

// local, and etcd when this run started its cluster (SVC_TEST_CLUSTERS), as testBackends() picks by default
const BACKENDS = testBackends((['local', 'etcd'] as const).filter((name) => name === 'local' || hasTestCluster(name)))

describe.each(BACKENDS)('svc template with a real nginx on $name', (backend) => {
  it('reconfigures and reloads nginx as instances come and go, without a failed request', async () => {
    const service = uniqueService('web')
    const host = `${service}.${DOMAIN}`
    const outDir = mkdtempSync(path.join(tmpdir(), 'svc-template-'))
    cleanups.push(() => rmSync(outDir, {recursive: true, force: true}))
    const out = path.join(outDir, 'svc.conf')

    const nginx: PrivateNginx = await startPrivateNginx(
      // a glob: nginx starts before svc has written the file
      (port) => `  server { listen 127.0.0.1:${port} default_server; return 404; }\n  include ${outDir}/*.conf;`,
    )
    cleanups.push(() => nginx.stop())
    const upstreams: TestUpstream[] = [await startUpstream('a'), await startUpstream('b')]
    cleanups.push(async () => {
      await Promise.allSettled(upstreams.map((u) => u.kill()))
    })
    const registry: Registry = await openRegistry(backend.uri)
    cleanups.push(() => registry.close())

    const child = spawnCli(
      ['template', '-t', EXAMPLE, '--out', out, '--exec', nginx.reloadCommand, '--json', '--debounce', '100ms'],
      {SVC_BACKEND: backend.uri, SVC_NGINX_LISTEN: `127.0.0.1:${nginx.port}`, SVC_NGINX_DOMAIN: DOMAIN},
    )
    stopOnExit(child)
    const {events, stderr} = collect(child)
    const step = async (what: string, condition: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> => {
      await eventually(async () => condition(), ms).catch(() => {
        throw new Error(`${what}: events ${JSON.stringify(events)}; stderr: ${stderr()}`)
      })
    }

    // start-up: node, oclif and the first snapshot, on a machine that may be busy
    await step('watching', () => events.some((e) => e.type === 'watching'), 30_000)
    const [a, b] = upstreams as [TestUpstream, TestUpstream]
    const ha = await registry.register({service, id: 'a', address: '127.0.0.1', port: a.port})
    // until a reload's old worker has exited it still takes connections, with the config before the change
    const settled = (what: string): Promise<void> => step(`${what}: old workers gone`, () => nginx.workers() === 1)
    await step('a through nginx', async () => (await get(nginx.port, host)).body === 'This is a.')
    await settled('a added')

    const loop = requestLoop(nginx.port, host)
    try {
      await registry.register({service, id: 'b', address: '127.0.0.1', port: b.port})
      await step('b joins', () => loop.answers.includes('This is b.') && loop.answers.includes('This is a.'))
      await ha.close()
      // a deregistered instance is out of the config after the reload; only then does its process stop
      await step('a leaves', () => {
        const last = loop.answers.slice(-30)
        return last.length === 30 && last.every((body) => body === 'This is b.')
      })
      await settled('a removed')
      await a.kill()
      const seen = loop.answers.length
      await step('requests after a stopped', () => loop.answers.length >= seen + 30)
    } finally {
      await loop.stop()
    }

    expect(loop.failures, `events: ${JSON.stringify(events)}`).toEqual([])
    expect(loop.answers.length).toBeGreaterThan(60)
    const execs = events.filter((e) => e.type === 'exec')
    // the first file, a added, b added, a removed: four renders that changed the file, four reloads, all fine
    expect(execs.map((e) => e.ok)).toEqual([true, true, true, true])
    const config = readFileSync(out, 'utf8')
    expect(config).toContain(`server 127.0.0.1:${b.port};`)
    expect(config).not.toContain(`server 127.0.0.1:${a.port};`)
  })
})
