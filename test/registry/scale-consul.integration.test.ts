import {type ChildProcess, spawn} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'

import {connectionsTo} from '../../src/lib/procnet.js'
import {openRegistry} from '../../src/lib/registry/index.js'
import {parseBackend} from '../../src/lib/registry/spec.js'
import {uniqueService} from '../helpers/backends.js'
import {eventually, ROOT, waitForOutput} from '../helpers/cli.js'
import {hasTestCluster, testCluster, withClusterLock} from '../helpers/clusters.js'
import {consulHttp} from '../helpers/consul-api.js'
import {registerMany} from '../helpers/scale.js'

// 2,000 instances over 400 services: a watcher holds a constant number of connections and an idle period is silent
const uri = hasTestCluster('consul')
  ? testCluster('consul').uri
  : (process.env.SVC_TEST_CONSUL ?? 'consul://127.0.0.1:28500')
const spec = parseBackend(uri)
if (spec.kind !== 'consul') throw new Error(`SVC_TEST_CONSUL is not a consul URI: ${uri}`)
const consulHosts = spec.hosts
const consulPorts = new Set(consulHosts.map((h) => h.port))
const N = 2000
const TTL_MS = 3000
const REFRESH_MS = 1000
/** Registrations in flight at once: an agent applies registrations one at a time, more would only queue there. */
const CONCURRENCY = 4

/** A watch of everything in another process, printing its snapshot's size and each change of `prefix`'s services. */
function watcherScript(dir: string, prefix: string): string {
  const script = path.join(dir, 'watcher.mts')
  writeFileSync(
    script,
    [
      `import {openRegistry} from ${JSON.stringify(path.join(ROOT, 'src/lib/registry/index.ts'))}`,
      `const registry = await openRegistry(${JSON.stringify(uri)})`,
      `const ours = (s: string) => s.startsWith(${JSON.stringify(prefix + '-')})`,
      `for await (const event of registry.watch()) {`,
      `  if (event.type === 'snapshot') console.log('snapshot', event.instances.filter((i) => ours(i.service)).length)`,
      `  else if (event.type !== 'status' && ours(event.instance.service)) console.log('event', event.type, event.instance.id)`,
      `}`,
    ].join('\n'),
  )
  return script
}

describe('consul at 2,000 instances', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'svc-scale-consul-'))
  let watcher: ChildProcess | undefined
  afterAll(() => {
    watcher?.kill('SIGKILL')
    rmSync(dir, {recursive: true, force: true})
  })

  // 2,000 registrations load the agents for most of a minute: a drill that stops a member meanwhile (contract,
  // consul-drills) would fail on the slow agents, and this test on the missing one; both take the disruption lock
  it(
    'registers quickly; a watcher holds <= 3 connections, an idle refresh period is silent, one owner check passes',
    async () => (hasTestCluster('consul') ? withClusterLock('consul', scaleRun, 180_000) : scaleRun()),
    300_000,
  )

  async function scaleRun(): Promise<void> {
    const registry = await openRegistry(uri, {log() {}})
    const prefix = uniqueService('scale')
    try {
      const started = Date.now()
      const handles = await registerMany(registry, N, prefix, {ttlMs: TTL_MS, refreshMs: REFRESH_MS}, CONCURRENCY)
      const registerMs = Date.now() - started
      expect(handles).toHaveLength(N)

      watcher = spawn(process.execPath, ['--import', 'tsx', watcherScript(dir, prefix)], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      const watchStarted = Date.now()
      await waitForOutput(watcher, new RegExp(`^snapshot ${N}$`, 'm'), 20_000)
      const snapshotMs = Date.now() - watchStarted
      const lines: string[] = []
      watcher.stdout?.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter(Boolean)))

      const connections = connectionsTo(watcher.pid!, consulPorts).length
      expect(connections).toBeGreaterThan(0)
      expect(connections).toBeLessThanOrEqual(3)

      // two refresh periods (every instance refreshed twice, the owner check passed) without one watch event
      await new Promise((resolve) => {
        setTimeout(resolve, 2 * REFRESH_MS + 500)
      })
      expect(lines).toEqual([])

      // one TTL check for the whole process (the owner's) per agent used; the instances alias it
      const checks = (await Promise.all(consulHosts.map((h) => consulHttp(h, 'GET', '/v1/agent/checks')))) as Array<
        Record<string, {ServiceID: string; ServiceName: string; Type: string}>
      >
      const all = checks.flatMap((c) => Object.values(c))
      const owners = all.filter((c) => c.ServiceName === 'svc-owner' && c.ServiceID.includes(`-${process.pid}-`))
      const ours = all.filter((c) => c.ServiceName.startsWith(`${prefix}-`))
      expect(owners.length).toBeGreaterThanOrEqual(1)
      expect(owners.length).toBeLessThanOrEqual(consulHosts.length)
      expect(ours).toHaveLength(N)
      expect(ours.every((c) => c.Type === 'alias')).toBe(true)

      // one change reaches the watcher
      const changeAt = Date.now()
      const extra = await registry.register(
        {service: `${prefix}-0`, id: 'extra', address: '127.0.0.1', port: 9999},
        {ttlMs: TTL_MS, refreshMs: REFRESH_MS},
      )
      await eventually(async () => lines.includes('event added extra'), 5000)
      const changeMs = Date.now() - changeAt
      expect(lines).toEqual(['event added extra'])
      console.info(
        `consul ${N}: registered in ${registerMs} ms, watcher snapshot in ${snapshotMs} ms, ${connections} connections, one change seen in ${changeMs} ms`,
      )
      await extra.close()
    } finally {
      watcher?.kill('SIGKILL')
      await registry.close()
    }
  }
})
