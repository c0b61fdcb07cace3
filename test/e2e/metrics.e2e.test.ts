import {type ChildProcess, spawnSync} from 'node:child_process'
import {mkdtempSync, readFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {request} from 'undici'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {allocatePorts} from '../../src/lib/cluster/index.js'
import {openRegistry} from '../../src/lib/registry/index.js'
import type {RegistrationHandle, Registry} from '../../src/lib/registry/types.js'
import {ROOT, spawnCli, waitForExit} from '../helpers/cli.js'
import {startUpstream, type TestUpstream} from '../helpers/upstream.js'

// The agent's and the proxy's real /metrics, from the built binary: valid for promtool, and named as docs/metrics.md says.
const backend = `local://${mkdtempSync(path.join(tmpdir(), 'svc-e2e-metrics-'))}`
const env = {SVC_BACKEND: backend}
const DOC = readFileSync(path.join(ROOT, 'docs/metrics.md'), 'utf8')

/** The host:port of the first http:// URL on a line of `text` that matches `line`. */
function addressOn(text: string, line: RegExp): string | undefined {
  const found = text.split('\n').find((l) => line.test(l))
  return found === undefined ? undefined : /http:\/\/([^/\s]+)/.exec(found)?.[1]
}

/** Starts `args`; resolves with the child, what it printed so far, and the address on its line matching `line`. */
async function startServing(
  args: string[],
  line: RegExp,
): Promise<{child: ChildProcess; address: string; output: () => string}> {
  const child = spawnCli(args, env)
  let output = ''
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no line matching ${line} within 20 s: ${output}`)), 20_000)
    const onData = (d: Buffer): void => {
      output += d.toString()
      const found = addressOn(output, line)
      if (found !== undefined) {
        clearTimeout(timer)
        resolve(found)
      }
    }

    child.stdout!.on('data', onData)
    child.stderr!.on('data', onData)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${args[0]} exited with ${code} before serving metrics: ${output}`))
    })
  }).catch((error: unknown) => {
    child.kill('SIGKILL')
    throw error
  })
  return {child, address, output: () => output}
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return
  child.kill('SIGTERM')
  await waitForExit(child, 15_000).catch(() => child.kill('SIGKILL'))
}

async function scrape(address: string): Promise<{type: string; body: string}> {
  const res = await request(`http://${address}/metrics`)
  expect(res.statusCode).toBe(200)
  return {type: String(res.headers['content-type']), body: await res.body.text()}
}

/** promtool's verdict on an exposition: exit status and what it printed (lint problems, one a line). */
function promtool(body: string): {status: number | null; output: string} {
  const run = spawnSync('promtool', ['check', 'metrics'], {input: body, encoding: 'utf8', timeout: 20_000})
  if (run.error) throw new Error(`promtool did not run (${run.error.message}): run scripts/install-backends.sh`)
  return {status: run.status, output: `${run.stdout}${run.stderr}`.trim()}
}

/** The metric families an exposition declares, by `# TYPE` line. */
function served(body: string, prefix: string): string[] {
  return [...body.matchAll(/^# TYPE (\S+) \S+$/gm)].map((m) => m[1]!).filter((n) => n.startsWith(prefix))
}

/** The metric names docs/metrics.md lists (the first column of its tables) under the heading `heading`. */
function documented(heading: string, prefix: string): string[] {
  const section = DOC.split(/^## /m).find((s) => s.startsWith(heading)) ?? ''
  return [...section.matchAll(/^\| `([a-z_:]+)`/gm)].map((m) => m[1]!).filter((n) => n.startsWith(prefix))
}

describe('/metrics of the built binary', () => {
  let registry: Registry
  let upstream: TestUpstream
  let handle: RegistrationHandle

  beforeAll(async () => {
    registry = await openRegistry(backend)
    upstream = await startUpstream('metrics')
    handle = await registry.register({service: 'shop', address: '127.0.0.1', port: upstream.port})
  })

  afterAll(async () => {
    await handle?.close()
    await registry?.close()
    await upstream?.kill()
  })

  it('svc proxy: passes promtool check metrics and serves exactly the documented svc_proxy_* names', async () => {
    const proxy = await startServing(
      ['proxy', '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'],
      /^svc proxy admin on /,
    )
    try {
      // one answered request, so that the labelled families have samples too
      const listening = addressOn(proxy.output(), /^svc proxy listening on /)!
      const answer = await request(`http://${listening}/shop/`)
      expect(answer.statusCode).toBe(200)
      await answer.body.text()
      const {type, body} = await scrape(proxy.address)
      expect(type).toBe('text/plain; version=0.0.4; charset=utf-8')
      expect(promtool(body)).toEqual({status: 0, output: ''})
      expect(served(body, 'svc_').sort()).toEqual(documented('svc proxy', 'svc_').sort())
      // the default process and Node.js collectors
      for (const name of documented('Process and Node.js', '')) expect(served(body, name)).toContain(name)
    } finally {
      await stop(proxy.child)
    }
  })

  it('svc proxy --workers 2: the whole proxy metrics pass promtool, with the documented names and one family each', async () => {
    const proxy = await startServing(
      ['proxy', '--workers', '2', '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'],
      /^svc proxy admin on /,
    )
    try {
      const listening = addressOn(proxy.output(), /^svc proxy listening on /)!
      // one request and one 404 on each of a few connections, so that both workers' families have samples
      for (let i = 0; i < 4; i++) {
        for (const target of ['/shop/', '/nowhere/']) {
          const answer = await request(`http://${listening}${target}`, {reset: true})
          await answer.body.text()
        }
      }

      const {type, body} = await scrape(proxy.address)
      expect(type).toBe('text/plain; version=0.0.4; charset=utf-8')
      expect(promtool(body)).toEqual({status: 0, output: ''})
      const names = served(body, 'svc_')
      expect(new Set(names).size).toBe(names.length)
      expect(names.sort()).toEqual(
        [...documented('svc proxy', 'svc_'), ...documented('svc proxy --workers', 'svc_')].sort(),
      )
      // the workers' start times, one each, have no sum: prom-client's aggregator leaves the family out
      for (const name of documented('Process and Node.js', '').filter((n) => n !== 'process_start_time_seconds')) {
        expect(served(body, name)).toContain(name)
      }

      expect(body).toContain('svc_proxy_requests_total{service="shop",code="200"} 4')
      expect(body).toContain('svc_proxy_requests_total{service="(unknown)",code="404"} 4')
    } finally {
      await stop(proxy.child)
    }
  })

  it('svc agent: passes promtool check metrics and serves exactly the documented svc_agent_* names', async () => {
    // --explicit: the machine's other containers (no SERVICE_NAME) are left alone
    const [port] = await allocatePorts(1)
    const agent = await startServing(['agent', '--explicit', '--metrics', `127.0.0.1:${port}`], /metrics at http:\/\//)
    try {
      const {type, body} = await scrape(agent.address)
      expect(type).toBe('text/plain; version=0.0.4; charset=utf-8')
      expect(promtool(body)).toEqual({status: 0, output: ''})
      expect(served(body, 'svc_').sort()).toEqual(documented('svc agent', 'svc_').sort())
      for (const name of documented('Process and Node.js', '')) expect(served(body, name)).toContain(name)
    } finally {
      await stop(agent.child)
    }
  })
})
