/**
 * svc watch latency, per backend: from a registration (or deregistration) made through the registry to its line
 * on the stdout of a `svc watch --json` process, over SVC_BENCH_COUNT changes (default 100 of each).
 * Backends: local always; zk, etcd, consul from SVC_BENCH_ZK / _ETCD / _CONSUL URIs, else a throwaway 3-member
 * cluster each (src/lib/cluster). SVC_BENCH_BACKENDS=local,zk limits the list. Goal: p99 under 100 ms.
 */
import {spawn} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {fileURLToPath} from 'node:url'

import {type ClusterKind, type ClusterManifest, startCluster, stopCluster} from '../src/lib/cluster/index.js'
import {openRegistry} from '../src/lib/registry/index.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const COUNT = Number(process.env.SVC_BENCH_COUNT ?? 100)
const STEP_TIMEOUT_MS = 10_000
const KINDS: ClusterKind[] = ['zk', 'etcd', 'consul']

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN
}

async function measure(name: string, uri: string): Promise<string> {
  const service = `bench-${Date.now().toString(36)}`
  const watcher = spawn(process.execPath, [path.join(ROOT, 'bin/run.js'), 'watch', service, '--json', '-b', uri], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const seen = new Map<string, number>()
  let buffer = ''
  const state = {ready: false}
  watcher.stdout.on('data', (d: Buffer) => {
    const at = performance.now()
    buffer += d.toString()
    const lines = buffer.split('\n')
    buffer = lines.pop()!
    for (const line of lines) {
      const record = JSON.parse(line) as {type: string; instance: {id: string}}
      seen.set(`${record.type} ${record.instance.id}`, at)
    }
  })
  watcher.stderr.on('data', (d: Buffer) => {
    if (d.toString().includes('svc: watching ')) state.ready = true
  })
  const registry = await openRegistry(uri)
  const wait = async (key: string): Promise<number> => {
    const deadline = performance.now() + STEP_TIMEOUT_MS
    while (!seen.has(key)) {
      if (performance.now() > deadline) throw new Error(`${name}: no "${key}" line within ${STEP_TIMEOUT_MS} ms`)
      await sleep(1)
    }

    return seen.get(key)!
  }

  try {
    const deadline = Date.now() + STEP_TIMEOUT_MS
    while (!state.ready) {
      if (Date.now() > deadline) throw new Error(`${name}: the watcher did not start`)
      await sleep(10)
    }

    const added: number[] = []
    const removed: number[] = []
    for (let i = 0; i < COUNT; i++) {
      const start = performance.now()
      const handle = await registry.register({service, id: `i${i}`, address: '127.0.0.1', port: 10_000 + i})
      added.push((await wait(`added i${i}`)) - start)
      const stop = performance.now()
      await handle.close()
      removed.push((await wait(`removed i${i}`)) - stop)
    }

    const row = (label: string, values: number[]): string => {
      const sorted = [...values].sort((a, b) => a - b)
      return `${name.padEnd(7)} ${label.padEnd(8)} n=${values.length}  p50 ${percentile(sorted, 50).toFixed(1)} ms  p99 ${percentile(sorted, 99).toFixed(1)} ms  max ${sorted.at(-1)!.toFixed(1)} ms`
    }

    return `${row('register', added)}\n${row('remove', removed)}`
  } finally {
    watcher.kill('SIGTERM')
    await registry.close()
  }
}

const wanted = new Set((process.env.SVC_BENCH_BACKENDS ?? 'local,zk,etcd,consul').split(','))
const dir = mkdtempSync(path.join(tmpdir(), 'svc-bench-watch-'))
const clusters: ClusterManifest[] = []
try {
  const uris: Array<[string, string]> = []
  if (wanted.has('local')) uris.push(['local', `local://${path.join(dir, 'local')}`])
  for (const kind of KINDS.filter((k) => wanted.has(k))) {
    const given = process.env[`SVC_BENCH_${kind.toUpperCase()}`]
    if (given) {
      uris.push([kind, given])
      continue
    }

    const manifest = await startCluster({kind, nodes: 3, name: `bench-${kind}`, dir: path.join(dir, kind)})
    clusters.push(manifest)
    uris.push([kind, manifest.backendUri])
  }

  console.log(`svc watch latency: registration -> line on the watcher's stdout, ${COUNT} changes each way`)
  for (const [name, uri] of uris) console.log(await measure(name, uri))
  console.log('goal: p99 under 100 ms on every backend')
} finally {
  await Promise.allSettled(clusters.map((m) => stopCluster(m, {removeData: true})))
  rmSync(dir, {recursive: true, force: true})
}
