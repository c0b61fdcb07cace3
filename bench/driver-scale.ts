/**
 * One backend at scale (issue 15): this process registers SVC_BENCH_N instances (default 10,000) over N/5 services
 * through the library; a second process watches everything; then SVC_BENCH_CHANGES single changes (default 50: an
 * instance added, then removed, in turn) are timed from the call to the watcher's line. Prints register-all time,
 * registrar RSS, first snapshot, the watcher's idle CPU and connections, change -> watch p50/p99, and the watcher's
 * CPU per change (process.cpuUsage). SVC_BENCH_URI names the backend (zk://... or etcd://...). Bounded by the caller:
 *   timeout 600 npx tsx bench/driver-scale.ts
 */
import {spawn} from 'node:child_process'
import {readdirSync, readFileSync, readlinkSync} from 'node:fs'
import {setTimeout as sleep} from 'node:timers/promises'
import {fileURLToPath} from 'node:url'

import {parseProcNetTcp} from '../src/lib/procnet.js'
import {openRegistry} from '../src/lib/registry/index.js'
import type {RegistrationHandle} from '../src/lib/registry/types.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const URI = process.env.SVC_BENCH_URI ?? ''
const N = Number(process.env.SVC_BENCH_N ?? 10_000)
const SERVICES = Math.max(1, Math.floor(N / 5))
const CHANGES = Number(process.env.SVC_BENCH_CHANGES ?? 50)
const IDLE_MS = Number(process.env.SVC_BENCH_IDLE_MS ?? 10_000)
const TTL_MS = Number(process.env.SVC_BENCH_TTL_MS ?? 10_000)
const IN_FLIGHT = Number(process.env.SVC_BENCH_IN_FLIGHT ?? 50)
const STEP_TIMEOUT_MS = 10_000

interface Line {
  type: string
  id?: string
  n?: number
  /** performance.timeOrigin + performance.now() in the watcher. */
  at: number
  /** The watcher's user + system CPU so far, in µs. */
  cpu: number
}

const now = (): number => performance.timeOrigin + performance.now()
const percentile = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN

function connections(pid: number): number {
  const inodes = new Set<number>()
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
      if (match) inodes.add(Number(match[1]))
    } catch {
      // closed meanwhile
    }
  }

  let count = 0
  for (const file of ['tcp', 'tcp6']) {
    for (const s of parseProcNetTcp(readFileSync(`/proc/${pid}/net/${file}`, 'utf8')))
      if (s.state === 0x01 && inodes.has(s.inode)) count++
  }

  return count
}

function startWatcher(uri: string): {pid: number; lines: Line[]; stop: () => void; cpu: () => Promise<number>} {
  const script = `
    import {openRegistry} from './src/lib/registry/index.ts'
    const registry = await openRegistry(${JSON.stringify(uri)}, {log: (m) => console.error(m)})
    const cpu = () => { const u = process.cpuUsage(); return u.user + u.system }
    const at = () => performance.timeOrigin + performance.now()
    process.stdout.write(JSON.stringify({type: 'start', at: at(), cpu: cpu()}) + '\\n')
    process.stdin.on('data', () => process.stdout.write(JSON.stringify({type: 'cpu', at: at(), cpu: cpu()}) + '\\n'))
    for await (const e of registry.watch()) {
      const line = {type: e.type, at: at(), cpu: cpu()}
      if (e.type === 'snapshot') line.n = e.instances.length
      else if (e.type !== 'status') line.id = e.instance.id
      process.stdout.write(JSON.stringify(line) + '\\n')
    }
  `
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {cwd: ROOT})
  const lines: Line[] = []
  let pending = ''
  child.stdout.on('data', (chunk: Buffer) => {
    pending += chunk.toString()
    const parts = pending.split('\n')
    pending = parts.pop() ?? ''
    for (const part of parts) if (part.trim() !== '') lines.push(JSON.parse(part) as Line)
  })
  child.stderr.on('data', (chunk: Buffer) => process.stderr.write(`watcher: ${chunk.toString()}`))
  const cpu = async (): Promise<number> => {
    const before = lines.length
    child.stdin.write('\n')
    const line = await waitFor(lines, (l, i) => i >= before && l.type === 'cpu')
    return line.cpu
  }

  return {pid: child.pid ?? -1, lines, stop: () => child.kill('SIGKILL'), cpu}
}

async function waitFor(
  lines: Line[],
  match: (line: Line, index: number) => boolean,
  ms = STEP_TIMEOUT_MS,
): Promise<Line> {
  const until = Date.now() + ms
  for (;;) {
    const found = lines.find((line, index) => match(line, index))
    if (found) return found
    if (Date.now() > until) throw new Error(`no such watch line within ${ms} ms`)
    await sleep(1)
  }
}

async function main(): Promise<void> {
  if (!/^(zk|etcd):\/\//.test(URI)) throw new Error('set SVC_BENCH_URI to a zk:// or etcd:// URI')
  const registry = await openRegistry(URI, {log: (m) => process.stderr.write(`registrar: ${m}\n`)})
  const started = Date.now()
  const handles: RegistrationHandle[] = []
  let next = 0
  await Promise.all(
    Array.from({length: IN_FLIGHT}, async () => {
      while (next < N) {
        const i = next++
        const instance = {service: `scale-${i % SERVICES}`, id: `i${i}`, address: '127.0.0.1', port: 20_000 + i}
        handles.push(await registry.register(instance, {ttlMs: TTL_MS}))
      }
    }),
  )
  const registerMs = Date.now() - started
  const rssMb = Math.round(process.memoryUsage().rss / 2 ** 20)
  const watcher = startWatcher(URI)
  try {
    const start = await waitFor(watcher.lines, (l) => l.type === 'start', 30_000)
    const snapshot = await waitFor(watcher.lines, (l) => l.type === 'snapshot', 60_000)
    const links = connections(watcher.pid)
    await sleep(2000)
    const idleFrom = await watcher.cpu()
    await sleep(IDLE_MS)
    const idleTo = await watcher.cpu()
    const quietLines = watcher.lines.filter((l) => l.type !== 'cpu' && l.at > snapshot.at).length
    const latencies: number[] = []
    const cpuFrom = await watcher.cpu()
    let extra: RegistrationHandle | undefined
    for (let c = 0; c < CHANGES; c++) {
      const from = now()
      let wanted: string
      if (extra) {
        wanted = `removed ${extra.instance.id}`
        await extra.close()
        extra = undefined
      } else {
        const i = N + c
        extra = await registry.register(
          {service: `scale-${i % SERVICES}`, id: `i${i}`, address: '127.0.0.1', port: 20_000 + i},
          {ttlMs: TTL_MS},
        )
        wanted = `added ${extra.instance.id}`
      }

      const seen = await waitFor(watcher.lines, (l) => `${l.type} ${l.id}` === wanted)
      latencies.push(seen.at - from)
      await sleep(100)
    }

    const cpuTo = await watcher.cpu()
    const sorted = [...latencies].sort((a, b) => a - b)
    const idleCpu = ((idleTo - idleFrom) / 1000 / IDLE_MS) * 100
    // the 100 ms pauses between changes are idle time of the watcher: their share of idle CPU is taken off
    const changeCpuMs = (cpuTo - cpuFrom) / 1000 / CHANGES
    console.log(
      JSON.stringify({
        uri: URI.replace(/\/\/[^@/]*@/, '//'),
        n: N,
        services: SERVICES,
        registerMs,
        registrarRssMb: rssMb,
        firstSnapshotMs: Math.round(snapshot.at - start.at),
        snapshotInstances: snapshot.n,
        watcherConnections: links,
        idleCpuPercent: Number(idleCpu.toFixed(2)),
        idleWatchLines: quietLines,
        changeP50Ms: Number(percentile(sorted, 50).toFixed(1)),
        changeP99Ms: Number(percentile(sorted, 99).toFixed(1)),
        watcherCpuMsPerChange: Number(changeCpuMs.toFixed(2)),
      }),
    )
    await extra?.close()
  } finally {
    watcher.stop()
    const closing = Date.now()
    await registry.close()
    process.stderr.write(`closed the registrar in ${Date.now() - closing} ms\n`)
  }
}

await main()
