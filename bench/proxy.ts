/**
 * svc proxy beside its peers, all forwarding to the same 2 upstreams on 127.0.0.1 (bench/proxy-upstream.mjs):
 * - direct: wrk against one upstream, no proxy;
 * - nginx: Debian nginx-light as a reverse proxy, 1 worker, keepalive to the upstreams, private prefix, daemon off;
 * - haproxy: Debian HAProxy, nbthread 1, http-reuse always, keep-alive to the upstreams (bench/proxy-peers.ts);
 * - article: the express 4 + http-proxy 1 gateway of the background article (bench/article-gateway.mjs);
 * - svc: `svc proxy --workers 1` on the local backend, the 2 upstreams registered through the library;
 * - svc-nh: the same on the node:http engine (SVC_PROXY_ENGINE=node-http), what svc falls back to.
 * Each target gets a warm-up, then wrk for a fixed time with fixed connections; SVC_BENCH_ROUNDS rounds (order
 * rotated each round) and the median of each figure is reported. Goals (issue 18): svc/nginx req/s >= 0.7, svc p99
 * <= 1.5x nginx p99, svc CPU per request <= 1.4x nginx's; svc/article >= 10 (the earlier goal) is kept.
 */
import {type ChildProcess, execFile, spawn} from 'node:child_process'
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {availableParallelism, tmpdir} from 'node:os'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {fileURLToPath} from 'node:url'
import {promisify} from 'node:util'

import {request} from 'undici'

import {allocatePorts} from '../src/lib/cluster/ports.js'
import {openRegistry} from '../src/lib/registry/index.js'
import {cpuTicks, TICK_US} from './proc-cpu.js'
import {haproxyConfig, nginxConfig} from './proxy-peers.js'
import {type Median, printRatios, type Result} from './proxy-report.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const DURATION = process.env.SVC_BENCH_DURATION ?? '10s'
const CONNECTIONS = Number(process.env.SVC_BENCH_CONNECTIONS ?? 50)
const THREADS = Number(process.env.SVC_BENCH_THREADS ?? 1)
const ROUNDS = Number(process.env.SVC_BENCH_ROUNDS ?? 3)
/**
 * raw (default): a net server with a canned response, so the core that wrk and the upstreams share keeps up with
 * every proxy and the proxies' own costs decide; node: node:http upstreams, which on that core cap every target
 * near the direct figure.
 */
const UPSTREAM = process.env.SVC_BENCH_UPSTREAM ?? 'raw'
if (UPSTREAM !== 'node' && UPSTREAM !== 'raw')
  throw new Error(`SVC_BENCH_UPSTREAM must be node or raw, not ${UPSTREAM}`)
const UPSTREAM_SCRIPT = UPSTREAM === 'raw' ? 'bench/proxy-upstream-raw.mjs' : 'bench/proxy-upstream.mjs'
const WARMUP = '2s'
/**
 * Pinning (SVC_BENCH_PIN, default on with 2+ cores): the proxy under test runs alone on the last core, wrk and the
 * upstreams on the others, so every proxy gets the same one core and none competes with the load generator for it.
 * SVC_BENCH_PIN=0 lets the scheduler place everything.
 */
const CORES = availableParallelism()
const PIN = (process.env.SVC_BENCH_PIN ?? (CORES >= 2 ? '1' : '0')) !== '0'
const PROXY_CPUS = String(CORES - 1)
const LOAD_CPUS = CORES > 2 ? `0-${CORES - 2}` : '0'
/** `cmd args` run on the given cores when pinning, as is otherwise. */
function pinned(cpus: string, cmd: string, args: string[]): [string, string[]] {
  return PIN ? ['taskset', ['-c', cpus, cmd, ...args]] : [cmd, args]
}

const run = promisify(execFile)

const children: ChildProcess[] = []
const dir = mkdtempSync(path.join(tmpdir(), 'svc-bench-proxy-'))

function start(
  cpus: string,
  command: string,
  commandArgs: string[],
  ready: RegExp | undefined,
  env: NodeJS.ProcessEnv = {},
): Promise<ChildProcess> {
  const [cmd, args] = pinned(cpus, command, commandArgs)
  const child = spawn(cmd, args, {cwd: ROOT, env: {...process.env, ...env}, stdio: ['ignore', 'pipe', 'pipe']})
  children.push(child)
  let output = ''
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${cmd} ${args.join(' ')} did not start: ${output}`)), 20_000)
    const onData = (d: Buffer): void => {
      output += d.toString()
      if (ready === undefined || ready.test(output)) {
        clearTimeout(timer)
        resolve(child)
      }
    }

    child.stdout!.on('data', onData)
    child.stderr!.on('data', (d: Buffer) => {
      output += d.toString()
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${cmd} exited with ${code}: ${output}`))
    })
    if (ready === undefined) {
      clearTimeout(timer)
      resolve(child)
    }
  })
}

async function waitForPort(port: number): Promise<void> {
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    try {
      const res = await request(`http://127.0.0.1:${port}/bench/`)
      await res.body.dump()
      if (res.statusCode === 200) return
    } catch {
      // not up yet
    }

    await sleep(50)
  }

  throw new Error(`nothing answered on 127.0.0.1:${port} within 10 s`)
}

function toMs(value: string, unit: string): number {
  const n = Number(value)
  return unit === 'us' ? n / 1000 : unit === 's' ? n * 1000 : n
}

async function wrk(url: string, duration: string, pid: number): Promise<Result> {
  const before = cpuTicks(pid)
  const [cmd, args] = pinned(LOAD_CPUS, 'wrk', [`-t${THREADS}`, `-c${CONNECTIONS}`, `-d${duration}`, '--latency', url])
  const {stdout} = await run(cmd, args, {timeout: 120_000})
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(stdout)
  const p99 = /\s99%\s+([\d.]+)(us|ms|s)\b/.exec(stdout)
  if (!rps || !p99) throw new Error(`cannot read wrk's output:\n${stdout}`)
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(stdout)
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout)
  const errors = Number(non2xx?.[1] ?? 0) + (socket ? socket.slice(1).reduce((a, b) => a + Number(b), 0) : 0)
  const requests = Number(/(\d+) requests in/.exec(stdout)?.[1] ?? 0)
  const cpuUs = requests > 0 ? ((cpuTicks(pid) - before) * TICK_US) / requests : Number.NaN
  return {rps: Number(rps[1]), p99Ms: toMs(p99[1]!, p99[2]!), errors, cpuUs}
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

async function main(): Promise<void> {
  const [up1, up2, nginxPort, haproxyPort, articlePort, svcPort, fallbackPort] = await allocatePorts(7)
  const upstream = await start(LOAD_CPUS, process.execPath, [UPSTREAM_SCRIPT, String(up1)], /upstream on/)
  await start(LOAD_CPUS, process.execPath, [UPSTREAM_SCRIPT, String(up2)], /upstream on/)

  const prefix = path.join(dir, 'nginx')
  mkdirSync(path.join(prefix, 'tmp'), {recursive: true})
  writeFileSync(path.join(prefix, 'nginx.conf'), nginxConfig(prefix, nginxPort!, [up1!, up2!]))
  const nginxChild = await start(
    PROXY_CPUS,
    existsNginx(),
    ['-p', prefix, '-c', path.join(prefix, 'nginx.conf'), '-e', path.join(prefix, 'error.log')],
    undefined,
  )
  await waitForPort(nginxPort!)

  const haproxyConf = path.join(dir, 'haproxy.cfg')
  writeFileSync(haproxyConf, haproxyConfig(dir, haproxyPort!, [up1!, up2!]))
  // -db: foreground, no master process: the pid measured is the one process that serves
  const haproxyChild = await start(PROXY_CPUS, haproxyBinary(), ['-db', '-f', haproxyConf], undefined)
  await waitForPort(haproxyPort!)

  const articleChild = await start(
    PROXY_CPUS,
    process.execPath,
    ['bench/article-gateway.mjs', String(articlePort), `bench=127.0.0.1:${up1},127.0.0.1:${up2}`],
    /article gateway on/,
  )

  const backend = `local://${path.join(dir, 'registry')}`
  const registry = await openRegistry(backend)
  const handles = await Promise.all(
    [up1!, up2!].map((port) => registry.register({service: 'bench', address: '127.0.0.1', port})),
  )
  try {
    const svcProxy = await start(
      PROXY_CPUS,
      process.execPath,
      ['bin/run.js', 'proxy', '--listen', `127.0.0.1:${svcPort}`, '--workers', '1', '--backend', backend],
      /svc proxy listening on/,
    )
    await waitForPort(svcPort!)
    // the same proxy on the engine it falls back to when Node's internals move (src/lib/proxy/engine.ts)
    const fallbackProxy = await start(
      PROXY_CPUS,
      process.execPath,
      ['bin/run.js', 'proxy', '--listen', `127.0.0.1:${fallbackPort}`, '--workers', '1', '--backend', backend],
      /svc proxy listening on/,
      {SVC_PROXY_ENGINE: 'node-http'},
    )
    await waitForPort(fallbackPort!)

    const targets: Array<[string, string, number]> = [
      ['direct', `http://127.0.0.1:${up1}/bench/`, upstream.pid!],
      ['nginx', `http://127.0.0.1:${nginxPort}/bench/`, nginxChild.pid!],
      ['haproxy', `http://127.0.0.1:${haproxyPort}/bench/`, haproxyChild.pid!],
      ['article', `http://127.0.0.1:${articlePort}/bench/`, articleChild.pid!],
      ['svc', `http://127.0.0.1:${svcPort}/bench/`, svcProxy.pid!],
      ['svc-nh', `http://127.0.0.1:${fallbackPort}/bench/`, fallbackProxy.pid!],
    ]
    const results = new Map<string, Result[]>(targets.map(([name]) => [name, []]))
    console.log(
      `svc proxy bench: wrk -t${THREADS} -c${CONNECTIONS} -d${DURATION} --latency after a ${WARMUP} warm-up, ${ROUNDS} round(s), 2 ${UPSTREAM} upstreams on 127.0.0.1, ${PIN ? `proxy pinned to cpu ${PROXY_CPUS}, wrk and upstreams to cpu ${LOAD_CPUS}` : 'no pinning'}`,
    )
    for (let round = 0; round < ROUNDS; round++) {
      // rotate the order so no target always runs first (or last) on a busy machine
      const order = targets.map((_, i) => targets[(i + round) % targets.length]!)
      for (const [name, url, pid] of order) {
        await wrk(url, WARMUP, pid)
        const result = await wrk(url, DURATION, pid)
        results.get(name)!.push(result)
        console.log(
          `  round ${round + 1} ${name.padEnd(8)} ${result.rps.toFixed(0).padStart(7)} req/s  p99 ${result.p99Ms.toFixed(2).padStart(7)} ms  cpu ${result.cpuUs.toFixed(0).padStart(4)} µs/req${result.errors > 0 ? `  errors ${result.errors}` : ''}`,
        )
      }
    }

    const med = (name: string): Median => {
      const list = results.get(name)!
      return {
        rps: median(list.map((r) => r.rps)),
        p99: median(list.map((r) => r.p99Ms)),
        cpu: median(list.map((r) => r.cpuUs)),
        errors: list.reduce((a, r) => a + r.errors, 0),
      }
    }

    console.log(`\nmedians of ${ROUNDS} round(s):`)
    console.log(
      `  ${'target'.padEnd(8)} ${'req/s'.padStart(7)}  ${'p99 ms'.padStart(7)}  ${'cpu µs/req'.padStart(10)}  errors`,
    )
    for (const [name] of targets) {
      const m = med(name)
      console.log(
        `  ${name.padEnd(8)} ${m.rps.toFixed(0).padStart(7)}  ${m.p99.toFixed(2).padStart(7)}  ${m.cpu.toFixed(0).padStart(10)}  ${m.errors}`,
      )
    }

    console.log('  (cpu: user + system time of the target’s own processes per request; direct: the one upstream)')
    console.log('  (svc: the llhttp engine; svc-nh: the node:http engine, SVC_PROXY_ENGINE=node-http)')

    printRatios(med, results)
  } finally {
    await Promise.allSettled(handles.map((h) => h.close()))
    await registry.close()
  }
}

function existsNginx(): string {
  return process.env.SVC_BENCH_NGINX ?? '/usr/sbin/nginx'
}

function haproxyBinary(): string {
  return process.env.SVC_BENCH_HAPROXY ?? '/usr/sbin/haproxy'
}

async function stopAll(): Promise<void> {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
  await sleep(300)
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  rmSync(dir, {recursive: true, force: true})
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, async () => {
    await stopAll()
    process.exit(130)
  })
}

try {
  await main()
} finally {
  await stopAll()
}
