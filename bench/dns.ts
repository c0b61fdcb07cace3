/**
 * svc dns beside Consul's own DNS on the same registrations: SVC_BENCH_SERVICES (50) services x SVC_BENCH_INSTANCES
 * (5) registered through svc's registry in a throwaway `consul agent -dev` (udp_answer_limit raised to the instance
 * count, so both answer every instance; Consul's 200 HTTP connections per client address raised, as svc's watch holds a
 * blocking query per service and the registering process refreshes 250 TTL checks from the same address), and `svc dns -b consul` following that agent. dnsperf (-l
 * SVC_BENCH_DURATION s, default 10; -q 100 outstanding; A queries over the services in turn) against each, in
 * SVC_BENCH_ROUNDS (3) alternated rounds: queries/s and p99 (from dnsperf -v's per-query latencies), medians, and
 * the ratio svc/consul. Then change-to-answer latency: a new instance registered, UDP queries every 2 ms to both
 * servers until it is answered; median and max of SVC_BENCH_CHANGES (20). With 2+ cores, the server under test (svc
 * dns, and Consul) runs on the last core and dnsperf on the others (SVC_BENCH_PIN=0: no pinning).
 */
import {type ChildProcess, execFile, spawn} from 'node:child_process'
import {createSocket} from 'node:dgram'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {createServer} from 'node:net'
import {availableParallelism, tmpdir} from 'node:os'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {fileURLToPath} from 'node:url'
import {promisify} from 'node:util'

import dnsPacket from 'dns-packet'

import {openRegistry} from '../src/lib/registry/index.js'
import type {RegistrationHandle} from '../src/lib/registry/types.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const SERVICES = Number(process.env.SVC_BENCH_SERVICES ?? 50)
const INSTANCES = Number(process.env.SVC_BENCH_INSTANCES ?? 5)
const DURATION = Number(process.env.SVC_BENCH_DURATION ?? 10)
const ROUNDS = Number(process.env.SVC_BENCH_ROUNDS ?? 3)
const CHANGES = Number(process.env.SVC_BENCH_CHANGES ?? 20)
const CORES = availableParallelism()
const PIN = (process.env.SVC_BENCH_PIN ?? (CORES >= 2 ? '1' : '0')) !== '0'
const SERVER_CPUS = String(CORES - 1)
const LOAD_CPUS = CORES > 2 ? `0-${CORES - 2}` : '0'
const CONSUL = process.env.SVC_CONSUL_BIN ?? path.join(ROOT, '.backends/consul/usr/bin/consul')
const run = promisify(execFile)

function pinned(cpus: string, cmd: string, args: string[]): [string, string[]] {
  return PIN ? ['taskset', ['-c', cpus, cmd, ...args]] : [cmd, args]
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const {port} = server.address() as {port: number}
      server.close(() => resolve(port))
    })
  })
}

const median = (values: number[]): number =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN
const percentile = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN

/** One UDP query; resolves with the A records answered, or [] after `timeoutMs`. */
function queryA(port: number, name: string, timeoutMs = 500): Promise<string[]> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4')
    const timer = setTimeout(() => {
      socket.close()
      resolve([])
    }, timeoutMs)
    socket.on('message', (raw) => {
      clearTimeout(timer)
      socket.close()
      const answers = dnsPacket.decode(raw).answers ?? []
      resolve(answers.flatMap((a) => (a.type === 'A' ? [a.data] : [])))
    })
    socket.send(dnsPacket.encode({type: 'query', id: 1, questions: [{type: 'A', name}]}), port, '127.0.0.1')
  })
}

async function until(what: string, probe: () => Promise<boolean>, timeoutMs: number, everyMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`bench: no ${what} within ${timeoutMs} ms`)
    await sleep(everyMs)
  }
}

/** dnsperf -v against one server: queries/s and the p99 of the per-query latencies it reports. */
async function dnsperf(port: number, queries: string): Promise<{qps: number; p99Ms: number; lost: number}> {
  const [cmd, args] = pinned(LOAD_CPUS, 'dnsperf', [
    '-s',
    '127.0.0.1',
    '-p',
    String(port),
    '-d',
    queries,
    '-l',
    String(DURATION),
    '-q',
    '100',
    '-v',
  ])
  const {stdout} = await run(cmd, args, {maxBuffer: 2 ** 30, timeout: (DURATION + 30) * 1000})
  const latencies: number[] = []
  for (const line of stdout.split('\n')) {
    // "> NOERROR svc-1.service.consul A 0.000153"
    const match = /^> \S+ .* ([\d.]+)$/.exec(line)
    if (match) latencies.push(Number(match[1]) * 1000)
  }

  latencies.sort((a, b) => a - b)
  const qps = Number(/Queries per second:\s+([\d.]+)/.exec(stdout)?.[1])
  const lost = Number(/Queries lost:\s+(\d+)/.exec(stdout)?.[1] ?? 0)
  return {qps, p99Ms: percentile(latencies, 99), lost}
}

function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve()
    })
    child.kill('SIGTERM')
  })
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'svc-bench-dns-'))
  const [http, consulDns, serfLan, serfWan, server, svcDns] = await Promise.all([
    freePort(),
    freePort(),
    freePort(),
    freePort(),
    freePort(),
    freePort(),
  ])
  let consul: ChildProcess | undefined
  let svc: ChildProcess | undefined
  const handles: RegistrationHandle[] = []
  const registry = await openRegistry(`consul://127.0.0.1:${http}`)
  try {
    const [consulCmd, consulArgs] = pinned(SERVER_CPUS, CONSUL, [
      'agent',
      '-dev',
      '-bind',
      '127.0.0.1',
      '-client',
      '127.0.0.1',
      '-data-dir',
      dir,
      '-http-port',
      String(http),
      '-dns-port',
      String(consulDns),
      '-serf-lan-port',
      String(serfLan),
      '-serf-wan-port',
      String(serfWan),
      '-server-port',
      String(server),
      '-grpc-port',
      '-1',
      '-log-level',
      'warn',
      '-hcl',
      `dns_config { udp_answer_limit = ${INSTANCES} } limits { http_max_conns_per_client = 4096 }`,
    ])
    consul = spawn(consulCmd, consulArgs, {stdio: ['ignore', 'ignore', 'inherit']})
    await until(
      'Consul has a leader',
      async () => (await registry.cluster().catch(() => undefined))?.leader !== undefined,
      30_000,
    )
    for (let s = 0; s < SERVICES; s++) {
      const batch = Array.from({length: INSTANCES}, (_, i) =>
        registry.register({service: `svc-${s}`, address: `127.0.${10 + s}.${i + 1}`, port: 8000 + i}),
      )
      handles.push(...(await Promise.all(batch)))
    }

    const [svcCmd, svcArgs] = pinned(SERVER_CPUS, process.execPath, [
      path.join(ROOT, 'bin/run.js'),
      'dns',
      '--listen',
      `127.0.0.1:${svcDns}`,
      '-b',
      `consul://127.0.0.1:${http}`,
    ])
    svc = spawn(svcCmd, svcArgs, {stdio: ['ignore', 'ignore', 'inherit']})
    const last = `svc-${SERVICES - 1}.service.consul`
    for (const port of [consulDns, svcDns]) {
      await until(
        `${port === svcDns ? 'svc dns' : 'Consul'} answers all ${INSTANCES} of ${last}`,
        async () => (await queryA(port, last)).length === INSTANCES,
        30_000,
      )
    }

    const queries = path.join(dir, 'queries.txt')
    writeFileSync(queries, Array.from({length: SERVICES}, (_, s) => `svc-${s}.service.consul A\n`).join(''))
    const results: Record<'consul' | 'svc', {qps: number; p99Ms: number; lost: number}[]> = {consul: [], svc: []}
    for (let round = 0; round < ROUNDS; round++) {
      const order: ('consul' | 'svc')[] = round % 2 === 0 ? ['consul', 'svc'] : ['svc', 'consul']
      for (const name of order) results[name].push(await dnsperf(name === 'svc' ? svcDns : consulDns, queries))
    }

    const changes: Record<'consul' | 'svc', number[]> = {consul: [], svc: []}
    for (let n = 0; n < CHANGES; n++) {
      const service = `change-${n}`
      const started = performance.now()
      // both servers are polled from the moment the registration starts: Consul's agent answers before svc's
      // registry call returns (the call also reads the record back)
      const seen = (['consul', 'svc'] as const).map(async (name) => {
        const port = name === 'svc' ? svcDns : consulDns
        const query = `${service}.service.consul`
        await until(`${name} answers ${service}`, async () => (await queryA(port, query, 100)).length === 1, 10_000, 2)
        changes[name].push(performance.now() - started)
      })
      handles.push(await registry.register({service, address: '127.0.9.1', port: 9000}))
      await Promise.all(seen)
    }

    const row = (name: 'consul' | 'svc'): string => {
      const r = results[name]
      const sorted = [...changes[name]].sort((a, b) => a - b)
      return `${name.padEnd(7)} ${median(r.map((x) => x.qps))
        .toFixed(0)
        .padStart(9)} q/s  p99 ${median(r.map((x) => x.p99Ms))
        .toFixed(2)
        .padStart(
          6,
        )} ms  lost ${r.reduce((a, x) => a + x.lost, 0)}  | change-to-answer median ${median(sorted).toFixed(1)} ms, max ${sorted.at(-1)!.toFixed(1)} ms`
    }

    const ratio = median(results.svc.map((x) => x.qps)) / median(results.consul.map((x) => x.qps))
    console.log(
      `svc dns bench: ${SERVICES} services x ${INSTANCES} instances in consul agent -dev; dnsperf -l ${DURATION} -q 100, ${ROUNDS} rounds (medians); ${PIN ? `servers on cpu ${SERVER_CPUS}, dnsperf on cpu ${LOAD_CPUS}` : 'no pinning'}`,
    )
    console.log(row('consul'))
    console.log(row('svc'))
    console.log(
      `ratio svc/consul queries/s: ${ratio.toFixed(2)}x; per round: consul ${results.consul.map((x) => x.qps.toFixed(0)).join(', ')}; svc ${results.svc.map((x) => x.qps.toFixed(0)).join(', ')}`,
    )
  } finally {
    await stop(svc)
    await Promise.allSettled(handles.map((h) => h.close()))
    await registry.close()
    await stop(consul)
    rmSync(dir, {recursive: true, force: true})
  }
}

await main()
