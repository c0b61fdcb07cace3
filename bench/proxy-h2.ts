/**
 * svc proxy's HTTP/2 and gRPC throughput beside nginx, in one run on 127.0.0.1:
 * - h2: h2load over TLS (ALPN h2) against nginx (`ssl http2`, 1 worker) and `svc proxy --workers 1 --tls-listen`,
 *   both terminating TLS in front of the same 2 HTTP/1.1 upstreams (bench/proxy-upstream-raw.mjs);
 * - grpc: a grpc-js load client (bench/proxy-h2-grpc.mjs, unary calls) against a grpc-js server directly and
 *   through svc proxy's h2c listener (the instance registered with meta protocol=grpc).
 * Each h2load run has a warm-up; SVC_BENCH_ROUNDS rounds (order rotated), medians reported, with svc/nginx for h2
 * (goal >= 0.5) and svc/direct for gRPC (reported). p99 comes from h2load's per-request log.
 */
import {type ChildProcess, execFile, spawn, spawnSync} from 'node:child_process'
import {mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {availableParallelism, tmpdir} from 'node:os'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {fileURLToPath} from 'node:url'
import {promisify} from 'node:util'

import {allocatePorts} from '../src/lib/cluster/ports.js'
import {openRegistry} from '../src/lib/registry/index.js'
import {makeCert} from '../test/helpers/tls-certs.js'
import {cpuTicks, TICK_US} from './proc-cpu.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const DURATION = Number(process.env.SVC_BENCH_DURATION ?? 8)
const WARMUP_S = 2
const CLIENTS = Number(process.env.SVC_BENCH_CONNECTIONS ?? 20)
const STREAMS = Number(process.env.SVC_BENCH_STREAMS ?? 10)
const ROUNDS = Number(process.env.SVC_BENCH_ROUNDS ?? 3)
const GRPC_CONCURRENCY = Number(process.env.SVC_BENCH_GRPC_CONCURRENCY ?? 50)
const CORES = availableParallelism()
const PIN = (process.env.SVC_BENCH_PIN ?? (CORES >= 2 ? '1' : '0')) !== '0'
const PROXY_CPUS = String(CORES - 1)
const LOAD_CPUS = CORES > 2 ? `0-${CORES - 2}` : '0'
const run = promisify(execFile)
const children: ChildProcess[] = []
const dir = mkdtempSync(path.join(tmpdir(), 'svc-bench-h2-'))

interface Result {
  rps: number
  p99Ms: number
  errors: number
  /** User + system CPU of the target's processes per request (h2 only): less disturbed by a busy machine than req/s. */
  cpuUs?: number
}

function pinned(cpus: string, cmd: string, args: string[]): [string, string[]] {
  return PIN ? ['taskset', ['-c', cpus, cmd, ...args]] : [cmd, args]
}

async function start(cpus: string, command: string, args: string[], ready?: RegExp): Promise<ChildProcess> {
  const [cmd, full] = pinned(cpus, command, args)
  const child = spawn(cmd, full, {cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe']})
  children.push(child)
  let output = ''
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${command} did not start: ${output}`)), 20_000)
    const onData = (d: Buffer): void => {
      output += d.toString()
      if (ready === undefined || ready.test(output)) {
        clearTimeout(timer)
        resolve(child)
      }
    }

    child.stdout!.on('data', onData)
    child.stderr!.on('data', onData)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${command} exited with ${code}: ${output}`))
    })
    if (ready === undefined) setTimeout(() => resolve(child), 500)
  })
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** h2load over TLS for DURATION seconds after a warm-up; p99 from its per-request log (µs until each response end). */
async function h2load(url: string, target: ChildProcess): Promise<Result> {
  const log = path.join(dir, 'h2load.log')
  rmSync(log, {force: true})
  const args = [
    `-c${CLIENTS}`,
    `-m${STREAMS}`,
    '-t1',
    `-D${DURATION}`,
    `--warm-up-time=${WARMUP_S}`,
    `--log-file=${log}`,
    url,
  ]
  const [cmd, full] = pinned(LOAD_CPUS, 'h2load', args)
  const running = run(cmd, full, {timeout: (DURATION + 30) * 1000, maxBuffer: 16 * 1024 * 1024})
  // the target's CPU over the measured part only: from the end of the warm-up to the end of the run
  await sleep(WARMUP_S * 1000)
  const before = cpuTicks(target.pid!)
  const {stdout} = await running
  const ticks = cpuTicks(target.pid!) - before
  const rps = /finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(stdout)
  const counts = /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(stdout)
  const status = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(stdout)
  if (!rps || !counts) throw new Error(`cannot read h2load's output:\n${stdout}`)
  const times = readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((line) => Number(line.split('\t')[2]))
    .filter((n) => Number.isFinite(n))
    .sort((a, b) => a - b)
  const p99 = (times[Math.min(times.length - 1, Math.floor(times.length * 0.99))] ?? Number.NaN) / 1000
  const errors = Number(counts[2]) + Number(counts[3]) + Number(status?.[3] ?? 0) + Number(status?.[4] ?? 0)
  const done = Number(counts[1])
  return {rps: Number(rps[1]), p99Ms: p99, errors, cpuUs: done > 0 ? (ticks * TICK_US) / done : Number.NaN}
}

async function grpcLoad(address: string): Promise<Result> {
  const [cmd, full] = pinned(LOAD_CPUS, process.execPath, [
    'bench/proxy-h2-grpc.mjs',
    'load',
    address,
    String(DURATION),
    String(GRPC_CONCURRENCY),
  ])
  const {stdout} = await run(cmd, full, {cwd: ROOT, timeout: (DURATION + 60) * 1000})
  return JSON.parse(stdout) as Result
}

function nginxConf(prefix: string, port: number, ups: number[], cert: string, key: string): string {
  // nginx -v writes its version on stderr
  const version = /nginx\/(\d+)\.(\d+)\.(\d+)/.exec(spawnSync(nginx(), ['-v'], {encoding: 'utf8'}).stderr)
  if (version === null) throw new Error(`cannot read the version of ${nginx()}`)
  const [major, minor, patch] = version.slice(1).map(Number)
  // `http2 on;` came with nginx 1.25.1; before it, `listen ... ssl http2`
  const modern = major! > 1 || minor! > 25 || (minor === 25 && patch! >= 1)
  return `worker_processes 1;
daemon off;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  # nginx ends an HTTP/2 connection after 1,000 requests by default (keepalive_requests, http2_max_requests before
  # 1.19.7), and h2load's timed runs do not reconnect: every client stopped inside the warm-up
  keepalive_requests 100000000;
  ${modern ? '' : 'http2_max_requests 100000000;'}
  client_body_temp_path ${prefix}/tmp/body;
  proxy_temp_path ${prefix}/tmp/proxy;
  fastcgi_temp_path ${prefix}/tmp/fastcgi;
  uwsgi_temp_path ${prefix}/tmp/uwsgi;
  scgi_temp_path ${prefix}/tmp/scgi;
  upstream bench { ${ups.map((p) => `server 127.0.0.1:${p};`).join(' ')} keepalive 64; }
  server {
    listen 127.0.0.1:${port} ssl${modern ? '' : ' http2'};
    ${modern ? 'http2 on;' : ''}
    ssl_certificate ${cert};
    ssl_certificate_key ${key};
    ssl_protocols TLSv1.2 TLSv1.3;
    location /bench/ {
      proxy_pass http://bench/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`
}

function nginx(): string {
  return process.env.SVC_BENCH_NGINX ?? '/usr/sbin/nginx'
}

async function main(): Promise<void> {
  const [up1, up2, nginxPort, svcTls, svcPlain, grpcPort] = await allocatePorts(6)
  await start(LOAD_CPUS, process.execPath, ['bench/proxy-upstream-raw.mjs', String(up1)], /upstream on/)
  await start(LOAD_CPUS, process.execPath, ['bench/proxy-upstream-raw.mjs', String(up2)], /upstream on/)
  await start(LOAD_CPUS, process.execPath, ['bench/proxy-h2-grpc.mjs', 'server', String(grpcPort)], /grpc upstream on/)
  const {cert, key} = makeCert(dir, 'bench', ['bench.test'])

  const prefix = path.join(dir, 'nginx')
  mkdirSync(path.join(prefix, 'tmp'), {recursive: true})
  writeFileSync(path.join(prefix, 'nginx.conf'), nginxConf(prefix, nginxPort!, [up1!, up2!], cert, key))
  const nginxProcess = await start(PROXY_CPUS, nginx(), [
    '-p',
    prefix,
    '-c',
    path.join(prefix, 'nginx.conf'),
    '-e',
    path.join(prefix, 'error.log'),
  ])

  const backend = `local://${path.join(dir, 'registry')}`
  const registry = await openRegistry(backend)
  const handles = await Promise.all([
    ...[up1!, up2!].map((port) => registry.register({service: 'bench', address: '127.0.0.1', port})),
    registry.register({service: 'svctest.Echo', address: '127.0.0.1', port: grpcPort!, meta: {protocol: 'grpc'}}),
  ])
  try {
    const svcProcess = await start(
      PROXY_CPUS,
      process.execPath,
      [
        'bin/run.js',
        'proxy',
        '--workers',
        '1',
        '--backend',
        backend,
        '--h2c',
        '--listen',
        `127.0.0.1:${svcPlain}`,
        '--tls-listen',
        `127.0.0.1:${svcTls}`,
        '--tls-cert',
        cert,
        '--tls-key',
        key,
      ],
      /listening on https/,
    )
    await sleep(500)
    const targets: Array<[string, () => Promise<Result>]> = [
      ['h2 nginx', async () => h2load(`https://127.0.0.1:${nginxPort}/bench/`, nginxProcess)],
      ['h2 svc', async () => h2load(`https://127.0.0.1:${svcTls}/bench/`, svcProcess)],
      ['grpc direct', async () => grpcLoad(`127.0.0.1:${grpcPort}`)],
      ['grpc svc', async () => grpcLoad(`127.0.0.1:${svcPlain}`)],
    ]
    console.log(
      `svc proxy h2 bench: h2load -c${CLIENTS} -m${STREAMS} -t1 -D${DURATION} (2 s warm-up) over TLS; grpc-js unary calls for ${DURATION} s, ${GRPC_CONCURRENCY} at a time; ${ROUNDS} round(s); ${PIN ? `proxies pinned to cpu ${PROXY_CPUS}, load and upstreams to cpu ${LOAD_CPUS}` : 'no pinning'}`,
    )
    const results = new Map<string, Result[]>(targets.map(([name]) => [name, []]))
    for (let round = 0; round < ROUNDS; round++) {
      const order = targets.map((_, i) => targets[(i + round) % targets.length]!)
      for (const [name, measure] of order) {
        const result = await measure()
        results.get(name)!.push(result)
        console.log(
          `  round ${round + 1} ${name.padEnd(11)} ${result.rps.toFixed(0).padStart(7)} req/s  p99 ${result.p99Ms.toFixed(2).padStart(7)} ms${result.cpuUs === undefined ? '' : `  cpu ${result.cpuUs.toFixed(0).padStart(4)} µs/req`}${result.errors > 0 ? `  errors ${result.errors}` : ''}`,
        )
      }
    }

    const med = (name: string): Result => {
      const list = results.get(name)!
      return {
        rps: median(list.map((r) => r.rps)),
        p99Ms: median(list.map((r) => r.p99Ms)),
        errors: list.reduce((a, r) => a + r.errors, 0),
        cpuUs: list[0]?.cpuUs === undefined ? undefined : median(list.map((r) => r.cpuUs ?? Number.NaN)),
      }
    }

    console.log(`\nmedians of ${ROUNDS} round(s):`)
    for (const [name] of targets) {
      const m = med(name)
      console.log(
        `  ${name.padEnd(11)} ${m.rps.toFixed(0).padStart(7)} req/s  p99 ${m.p99Ms.toFixed(2).padStart(7)} ms${m.cpuUs === undefined ? '' : `  cpu ${m.cpuUs.toFixed(0).padStart(4)} µs/req`}  errors ${m.errors}`,
      )
    }

    const h2 = med('h2 svc').rps / med('h2 nginx').rps
    console.log('\nratios:')
    console.log(
      `  svc/nginx h2 req/s      ${h2.toFixed(2).padStart(6)}  (goal >= 0.5: ${h2 >= 0.5 ? 'met' : 'NOT met'})`,
    )
    console.log(
      `  svc/nginx h2 p99        ${(med('h2 svc').p99Ms / med('h2 nginx').p99Ms).toFixed(2).padStart(6)}  (reported)`,
    )
    console.log(
      `  svc/nginx h2 cpu/req    ${(med('h2 svc').cpuUs! / med('h2 nginx').cpuUs!).toFixed(2).padStart(6)}  (reported: user + system time of each proxy's processes per request)`,
    )
    console.log(
      `  svc/direct grpc calls/s ${(med('grpc svc').rps / med('grpc direct').rps).toFixed(2).padStart(6)}  (reported)`,
    )
  } finally {
    await Promise.allSettled(handles.map((h) => h.close()))
    await registry.close()
  }
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
