/**
 * svc at scale (issue 15), per backend and size N (instances over N/5 services, registered by one library process,
 * bench/scale-registrar.ts): register-all time; first snapshot of `svc watch --json` (to its "watching" line) and
 * of `svc proxy` (to its "listening" line); RSS; idle CPU over 10 s; the watcher's backend connections
 * (/proc/net/tcp through src/lib/procnet.ts); SVC_BENCH_CHANGES changes from this process (an instance added, then
 * removed, in a service of its own), timed to the watcher's line and to the proxy's first answer from (or, on
 * removal, without) the instance; the watcher's CPU per change; `svc resolve` of one service. On Consul, `consul
 * watch -type=services` is measured beside it. Knobs: see bench/scale.sh.
 */
import {type ChildProcess, execFileSync, spawn} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync} from 'node:fs'
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {fileURLToPath} from 'node:url'

import {
  type ClusterKind,
  type ClusterManifest,
  findBinary,
  startCluster,
  stopCluster,
} from '../src/lib/cluster/index.js'
import {parseProcNetTcp, socketHolders} from '../src/lib/procnet.js'
import {openRegistry} from '../src/lib/registry/index.js'
import type {Registry} from '../src/lib/registry/types.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const BIN = path.join(ROOT, 'bin/run.js')
const CHANGES = Number(process.env.SVC_BENCH_CHANGES ?? 50)
const SIZES = (process.env.SVC_BENCH_SIZES ?? '0,5000,10000').split(',').map(Number)
const WANTED = (process.env.SVC_BENCH_BACKENDS ?? 'local,zk,etcd,consul').split(',')
const IDLE_MS = 10_000
const STEP_TIMEOUT_MS = 15_000
const START_TIMEOUT_MS = 180_000
const TICKS = 100

interface Row {
  backend: string
  n: number
  register: string
  snapshot: string
  rss: string
  idle: string
  connections: string
  watch: string
  route: string
  cpu: string
  resolve: string
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN
}

const ms = (v: number): string =>
  Number.isFinite(v) ? (v >= 1000 ? `${(v / 1000).toFixed(1)} s` : `${v.toFixed(0)} ms`) : '—'
const pair = (values: number[]): string => `${ms(percentile(values, 50))} / ${ms(percentile(values, 99))}`

/** utime + stime of a process, in ms. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS
}

function rssMb(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)
  return Number(line?.[1] ?? Number.NaN) / 1024
}

/** Established TCP connections a process holds (all of a watcher's are to the backend). */
function connections(pid: number): number {
  const sockets = [
    ...parseProcNetTcp(readFileSync('/proc/net/tcp', 'utf8')),
    ...parseProcNetTcp(readFileSync('/proc/net/tcp6', 'utf8')),
  ]
  const established = new Set(sockets.filter((s) => s.state === 1).map((s) => s.inode))
  // socketHolders maps each socket to the pids holding it
  return [...socketHolders(established).values()].filter((pids) => pids.includes(pid)).length
}

/** A child with its output kept, and the time its stdout or stderr first matched `pattern`. */
function child(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): {
  proc: ChildProcess
  out: () => string
  seen: (p: RegExp) => Promise<number>
  lines: (on: (line: string, at: number) => void) => void
} {
  const proc = spawn(command, args, {stdio: ['pipe', 'pipe', 'pipe'], env: {...process.env, ...env}})
  let text = ''
  const listeners: Array<(line: string, at: number) => void> = []
  let partial = ''
  proc.stdout!.on('data', (d: Buffer) => {
    const at = performance.now()
    text += d.toString()
    partial += d.toString()
    const lines = partial.split('\n')
    partial = lines.pop()!
    for (const line of lines) for (const on of listeners) on(line, at)
    if (text.length > 1e6) text = text.slice(-1e5)
  })
  proc.stderr!.on('data', (d: Buffer) => {
    text += d.toString()
  })
  const seen = async (pattern: RegExp): Promise<number> => {
    const deadline = Date.now() + START_TIMEOUT_MS
    while (!pattern.test(text)) {
      if (proc.exitCode !== null) throw new Error(`${args.slice(0, 2).join(' ')} exited: ${text.slice(-400)}`)
      if (Date.now() > deadline)
        throw new Error(`${args.slice(0, 2).join(' ')}: no ${pattern} within ${START_TIMEOUT_MS} ms`)
      await sleep(5)
    }

    return performance.now()
  }

  return {proc, out: () => text, seen, lines: (on) => listeners.push(on)}
}

function stop(proc: ChildProcess | undefined, graceMs = 15_000): Promise<void> {
  if (!proc || proc.exitCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL')
      resolve()
    }, graceMs)
    proc.once('exit', () => {
      clearTimeout(timer)
      resolve()
    })
    proc.kill('SIGTERM')
  })
}

/** The instance the changes add: one HTTP server answering with its port. */
async function upstream(): Promise<{server: http.Server; port: number}> {
  const server = http.createServer((_req, res) => {
    res.end('ok')
  })
  await new Promise<void>((resolve) => {
    server.listen(0, '127.0.0.1', resolve)
  })
  return {server, port: (server.address() as AddressInfo).port}
}

const agent = new http.Agent({keepAlive: true, maxSockets: 1})

function status(port: number, url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({host: '127.0.0.1', port, path: url, agent, timeout: 2000}, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', () => resolve(0))
    req.on('timeout', () => req.destroy())
  })
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, pollMs = 1): Promise<number> {
  const deadline = performance.now() + STEP_TIMEOUT_MS
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`no ${what} within ${STEP_TIMEOUT_MS} ms`)
    await sleep(pollMs)
  }

  return performance.now()
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = http.createServer()
    s.listen(0, '127.0.0.1', () => {
      const {port} = s.address() as AddressInfo
      s.close(() => resolve(port))
    })
  })
}

/** One backend at one size. */
async function measure(backend: string, uri: string, n: number, consulAddr?: string): Promise<Row[]> {
  const procs: ChildProcess[] = []
  const registry: Registry = await openRegistry(uri)
  const target = await upstream()
  const service = `bench-chg-${Date.now().toString(36)}`
  try {
    const registrar = child(process.execPath, [
      '--import',
      'tsx',
      path.join(ROOT, 'bench/scale-registrar.ts'),
      uri,
      String(n),
    ])
    procs.push(registrar.proc)
    await registrar.seen(/^registered \d+/m)
    const registerMs = Number(/^registered (\d+)/m.exec(registrar.out())![1])

    const watchAt = performance.now()
    const watcher = child(process.execPath, [BIN, 'watch', '--json', '-b', uri])
    procs.push(watcher.proc)
    const watchLines = new Map<string, number>()
    watcher.lines((line, at) => {
      if (!line.includes(service)) return
      const record = JSON.parse(line) as {type: string; instance: {id: string}}
      watchLines.set(`${record.type} ${record.instance.id}`, at)
    })
    const watchSnapshot = (await watcher.seen(/watching all services/)) - watchAt

    const port = await freePort()
    const proxyAt = performance.now()
    const proxy = child(process.execPath, [BIN, 'proxy', '--listen', `127.0.0.1:${port}`, '-b', uri])
    procs.push(proxy.proc)
    const proxySnapshot = (await proxy.seen(/svc proxy listening on/)) - proxyAt

    let peer: ReturnType<typeof child> | undefined
    let peerSnapshot = Number.NaN
    const peerOutputs: number[] = []
    if (consulAddr) {
      const peerAt = performance.now()
      peer = child(findBinary('consul'), ['watch', `-http-addr=${consulAddr}`, '-type=services'])
      procs.push(peer.proc)
      peer.proc.stdout!.on('data', () => peerOutputs.push(performance.now()))
      peerSnapshot = (await peer.seen(/\{/)) - peerAt
    }

    await sleep(1000)
    const pids = {
      watch: watcher.proc.pid!,
      proxy: proxy.proc.pid!,
      peer: peer?.proc.pid,
      registrar: registrar.proc.pid!,
    }
    const before = {
      watch: cpuMs(pids.watch),
      proxy: cpuMs(pids.proxy),
      peer: pids.peer ? cpuMs(pids.peer) : 0,
      registrar: cpuMs(pids.registrar),
    }
    await sleep(IDLE_MS)
    const idle = {
      watch: (cpuMs(pids.watch) - before.watch) / IDLE_MS,
      proxy: (cpuMs(pids.proxy) - before.proxy) / IDLE_MS,
      peer: pids.peer ? (cpuMs(pids.peer) - before.peer) / IDLE_MS : Number.NaN,
      registrar: (cpuMs(pids.registrar) - before.registrar) / IDLE_MS,
    }
    const conns = {watch: connections(pids.watch), peer: pids.peer ? connections(pids.peer) : Number.NaN}
    const rss = {watch: rssMb(pids.watch), proxy: rssMb(pids.proxy), registrar: rssMb(registrar.proc.pid!)}

    const toWatch: number[] = []
    const toRoute: number[] = []
    const toPeer: number[] = []
    const cpuStart = cpuMs(pids.watch)
    const changesAt = performance.now()
    for (let i = 0; i < CHANGES; i++) {
      const id = `c${i}`
      const peerSeen = peerOutputs.length
      const start = performance.now()
      const handle = await registry.register({service, id, address: '127.0.0.1', port: target.port})
      const routed = waitFor(`route to ${id}`, async () => (await status(port, `/${service}/`)) === 200)
      const watched = waitFor(`watch line added ${id}`, () => watchLines.has(`added ${id}`))
      toRoute.push((await routed) - start)
      toWatch.push((await watched) - start)
      if (peer) toPeer.push((await waitFor('consul watch output', () => peerOutputs.length > peerSeen)) - start)
      const gone = performance.now()
      await handle.close()
      const unrouted = waitFor(`route without ${id}`, async () => (await status(port, `/${service}/`)) !== 200)
      const unwatched = waitFor(`watch line removed ${id}`, () => watchLines.has(`removed ${id}`))
      toRoute.push((await unrouted) - gone)
      toWatch.push((await unwatched) - gone)
    }

    const changesMs = performance.now() - changesAt
    const perChange = (cpuMs(pids.watch) - cpuStart - idle.watch * changesMs) / (2 * CHANGES)

    const resolveAt = performance.now()
    try {
      execFileSync(process.execPath, [BIN, 'resolve', n > 0 ? 'scale-0' : service, '--all', '-b', uri], {
        stdio: 'ignore',
      })
    } catch {
      // exit 1 is the answer "no instance" (N = 0): the time is what counts
    }

    const resolveMs = performance.now() - resolveAt

    const rows: Row[] = [
      {
        backend,
        n,
        register:
          n === 0
            ? '—'
            : `${ms(registerMs)} (${rss.registrar.toFixed(0)} MB, idle ${(idle.registrar * 100).toFixed(1)} %)`,
        snapshot: `${ms(watchSnapshot)} / ${ms(proxySnapshot)}`,
        rss: `${rss.watch.toFixed(0)} / ${rss.proxy.toFixed(0)} MB`,
        idle: `${(idle.watch * 100).toFixed(1)} / ${(idle.proxy * 100).toFixed(1)} %`,
        connections: String(conns.watch),
        watch: pair(toWatch),
        route: pair(toRoute),
        cpu: `${Math.max(0, perChange).toFixed(1)}`,
        resolve: ms(resolveMs),
      },
    ]
    if (peer) {
      rows.push({
        backend: 'consul watch -type=services',
        n,
        register: '—',
        snapshot: ms(peerSnapshot),
        rss: `${rssMb(pids.peer!).toFixed(0)} MB`,
        idle: `${(idle.peer * 100).toFixed(1)} %`,
        connections: String(conns.peer),
        watch: `${pair(toPeer)} (adds)`,
        route: '—',
        cpu: '—',
        resolve: '—',
      })
    }

    return rows
  } finally {
    // the registrar (first) deregisters everything it holds: give it a minute
    for (const [i, proc] of procs.entries()) if (i > 0) await stop(proc)
    await stop(procs[0], 60_000)
    await registry.close()
    target.server.close()
  }
}

function table(rows: Row[]): string {
  const head = [
    'backend',
    'N',
    'register all (registrar RSS, idle CPU)',
    'first snapshot watch / proxy',
    'RSS watch / proxy',
    'idle CPU watch / proxy',
    'conns/watcher',
    'change->watch p50 / p99',
    'change->route p50 / p99',
    'CPU ms/change',
    'resolve',
  ]
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`]
  for (const r of rows) {
    lines.push(
      `| ${[r.backend, r.n.toLocaleString('en-US'), r.register, r.snapshot, r.rss, r.idle, r.connections, r.watch, r.route, r.cpu, r.resolve].join(' | ')} |`,
    )
  }

  return lines.join('\n')
}

const dir = mkdtempSync(path.join(tmpdir(), 'svc-bench-scale-'))
const clusters: ClusterManifest[] = []
const rows: Row[] = []
try {
  for (const backend of WANTED) {
    let uri = ''
    let consulAddr: string | undefined
    if (backend !== 'local') {
      const manifest = await startCluster({
        kind: backend as ClusterKind,
        nodes: 3,
        name: `scale-${backend}`,
        dir: path.join(dir, backend),
      })
      clusters.push(manifest)
      uri = manifest.backendUri
      if (backend === 'consul') consulAddr = uri.replace(/^consul:\/\//, '').split(',')[0]
    }

    for (const n of SIZES) rows.push(...(await attempt(backend, uri, n, consulAddr)))
  }
} finally {
  await Promise.allSettled(clusters.map((m) => stopCluster(m, {removeData: true})))
  rmSync(dir, {recursive: true, force: true})
  agent.destroy()
}

/** One size's rows, or one row saying why it failed (the next sizes and backends still run). */
async function attempt(backend: string, uri: string, n: number, consulAddr: string | undefined): Promise<Row[]> {
  try {
    // a local registry of its own per size: what a killed registrar left cannot blur the next one
    const at = backend === 'local' ? `local://${path.join(dir, `local-${n}`)}` : uri
    const measured = await measure(backend, at, n, consulAddr)
    for (const r of measured) console.error(`${r.backend} N=${r.n}: ${JSON.stringify(r)}`)
    return measured
  } catch (error) {
    console.error(`${backend} N=${n}: ${(error as Error).message}`)
    return [
      {
        backend,
        n,
        register: `failed: ${(error as Error).message.slice(0, 80)}`,
        snapshot: '—',
        rss: '—',
        idle: '—',
        connections: '—',
        watch: '—',
        route: '—',
        cpu: '—',
        resolve: '—',
      },
    ]
  }
}

console.log(`svc at scale: N instances over N/5 services, ${CHANGES} changes each way from another process`)
console.log(table(rows))
console.log(
  'goals: change p99 < 100 ms, idle CPU < 2 % of a core, connections per watcher <= 3, first snapshot < 2 s, resolve < 300 ms',
)
