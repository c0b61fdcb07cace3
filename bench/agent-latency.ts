/**
 * svc agent latency, per backend: container start → resolvable and container stop → gone (p50/p99 over
 * SVC_BENCH_COUNT containers started one by one), and the time to register 100 containers started at once.
 * Times start at Docker's own event timestamps (start, die) and end when a registry watch sees the change.
 * Backends: local always; zk, etcd, consul from SVC_BENCH_ZK / _ETCD / _CONSUL URIs, else a throwaway 1-member
 * cluster each (src/lib/cluster). SVC_BENCH_BACKENDS=local,zk limits the list.
 */
import {type ChildProcess, execFile, spawn} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import Dockerode from 'dockerode'

import {type ClusterKind, type ClusterManifest, startCluster, stopCluster} from '../src/lib/cluster/index.js'
import {openRegistry} from '../src/lib/registry/index.js'
import type {Registry, ServiceInstance, WatchEvent} from '../src/lib/registry/types.js'
import {ensureTestImage, HTTPD_COMMAND} from '../test/helpers/docker.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const COUNT = Number(process.env.SVC_BENCH_COUNT ?? 30)
const BURST = Number(process.env.SVC_BENCH_BURST ?? 100)
const STEP_TIMEOUT_MS = 10_000
const BURST_TIMEOUT_MS = 60_000
const PREFIX = `svcbench-${Date.now().toString(36)}`
const LABEL = `svc.bench.run=${PREFIX}`

const docker = new Dockerode()
const cli = (args: string[], timeoutMs = 60_000): Promise<string> =>
  new Promise((resolve, reject) => {
    execFile('docker', args, {timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024}, (error, stdout, stderr) =>
      error ? reject(new Error(`docker ${args.join(' ')}: ${stderr || error.message}`)) : resolve(stdout.trim()),
    )
  })

/** Docker's start and die times by container name, from its own event stream. */
class DockerTimes {
  readonly started = new Map<string, number>()
  readonly died = new Map<string, number>()
  private stream?: NodeJS.ReadableStream & {destroy?: () => void}

  async open(): Promise<void> {
    this.stream = await docker.getEvents({filters: {type: ['container'], label: [LABEL]}})
    let buffer = ''
    this.stream.on('data', (chunk: Buffer) => {
      buffer += chunk.toString()
      let newline: number
      while ((newline = buffer.indexOf('\n')) !== -1) {
        const line = buffer.slice(0, newline)
        buffer = buffer.slice(newline + 1)
        const event = JSON.parse(line) as {Action: string; Actor: {Attributes: {name: string}}; timeNano: number}
        const at = event.timeNano / 1e6
        if (event.Action === 'start') this.started.set(event.Actor.Attributes.name, at)
        if (event.Action === 'die') this.died.set(event.Actor.Attributes.name, at)
      }
    })
  }

  close(): void {
    this.stream?.destroy?.()
  }
}

/** Watches one service and records when each instance id appears and disappears. */
class Seen {
  readonly added = new Map<string, number>()
  readonly removed = new Map<string, number>()
  readonly current = new Map<string, ServiceInstance>()
  private readonly controller = new AbortController()
  private waiters: Array<() => void> = []

  constructor(registry: Registry, service: string) {
    const run = async (): Promise<void> => {
      for await (const event of registry.watch(service, {signal: this.controller.signal})) {
        this.record(event, Date.now())
        for (const wake of this.waiters.splice(0)) wake()
      }
    }

    run().catch(() => {})
  }

  private record(event: WatchEvent, now: number): void {
    switch (event.type) {
      case 'snapshot': {
        const ids = new Set(event.instances.map((i) => i.id))
        for (const i of event.instances) if (!this.current.has(i.id)) this.added.set(i.id, now)
        for (const id of this.current.keys()) if (!ids.has(id)) this.removed.set(id, now)
        this.current.clear()
        for (const i of event.instances) this.current.set(i.id, i)
        break
      }

      case 'added': {
        this.added.set(event.instance.id, now)
        this.current.set(event.instance.id, event.instance)
        break
      }

      case 'removed': {
        this.removed.set(event.instance.id, now)
        this.current.delete(event.instance.id)
        break
      }

      default: {
        break
      }
    }
  }

  async until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50)
        this.waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }

  close(): void {
    this.controller.abort()
  }
}

const ms = (n: number): string => `${Math.round(n)} ms`.padStart(8)

const percentile = (values: number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN
}

function startAgent(uri: string, hostname: string): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [path.join(ROOT, 'bin/run.js'), 'agent', '-b', uri, '--hostname', hostname, '--json'],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  )
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('agent did not connect in 30 s')), 30_000)
    let seen = ''
    child.stdout!.on('data', (d: Buffer) => {
      seen += d.toString()
      if (seen.includes('"type":"docker","state":"connected"')) {
        clearTimeout(timer)
        resolve(child)
      }
    })
    child.once('exit', (code) => reject(new Error(`agent exited with ${code}`)))
  })
}

async function stopAgent(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return
  const exited = new Promise((resolve) => {
    child.once('exit', resolve)
  })
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
  await exited
  clearTimeout(timer)
}

async function removeAll(): Promise<void> {
  const ids = (await cli(['ps', '-aq', '--filter', `label=${LABEL}`]).catch(() => '')).split('\n').filter(Boolean)
  for (let i = 0; i < ids.length; i += 50) await cli(['rm', '-f', ...ids.slice(i, i + 50)], 120_000).catch(() => '')
}

interface Result {
  backend: string
  start: number[]
  stop: number[]
  burstMs: number
  /** From the last container's start event (Docker's share is done) until every one is resolvable. */
  burstAfterLastStartMs: number
  /** Each burst container's start event → resolvable. */
  burstLag: number[]
  /** Docker's own share: first to last start event of the burst. */
  dockerSpanMs: number
  burstGoneMs: number
  /** SIGTERM to the agent until all 100 are deregistered. */
  drainMs: number
  /** A new agent's spawn (Node start-up included) until all 100 running containers are resolvable. */
  syncMs: number
}

async function benchBackend(name: string, uri: string, image: string, times: DockerTimes): Promise<Result> {
  const hostname = `${PREFIX}-${name}`
  const service = `bench-${name}-${Date.now().toString(36)}`
  const registry = await openRegistry(uri)
  const seen = new Seen(registry, service)
  let agent = await startAgent(uri, hostname)
  const idOf = (container: string): string => `${hostname}:${container}:80`
  const start: number[] = []
  const stop: number[] = []
  try {
    for (let i = 0; i < COUNT; i++) {
      const container = `${PREFIX}-${name}-${i}`
      await cli([
        'run',
        '-d',
        '--name',
        container,
        '--label',
        LABEL,
        '-p',
        '127.0.0.1::80',
        '-e',
        `SERVICE_NAME=${service}`,
        image,
        ...HTTPD_COMMAND,
      ])
      await seen.until(() => seen.added.has(idOf(container)), STEP_TIMEOUT_MS, `${container} to register`)
      start.push(seen.added.get(idOf(container))! - times.started.get(container)!)
      await cli(['stop', '-t', '5', container])
      await seen.until(() => seen.removed.has(idOf(container)), STEP_TIMEOUT_MS, `${container} to go`)
      stop.push(seen.removed.get(idOf(container))! - times.died.get(container)!)
      await cli(['rm', container])
    }

    const names = Array.from({length: BURST}, (_, i) => `${PREFIX}-${name}-burst-${i}`)
    await Promise.all(
      names.map((container) =>
        docker.createContainer({
          name: container,
          Image: image,
          Cmd: HTTPD_COMMAND,
          Labels: {'svc.bench.run': PREFIX},
          Env: [`SERVICE_NAME=${service}`],
          ExposedPorts: {'80/tcp': {}},
          HostConfig: {PortBindings: {'80/tcp': [{HostIp: '127.0.0.1', HostPort: ''}]}},
        }),
      ),
    )
    const burstBegan = Date.now()
    await Promise.all(names.map((container) => docker.getContainer(container).start()))
    await seen.until(() => names.every((c) => seen.current.has(idOf(c))), BURST_TIMEOUT_MS, `${BURST} containers`)
    const burstMs = Date.now() - burstBegan
    const lastStart = Math.max(...names.map((c) => times.started.get(c) ?? 0))
    const lastSeen = Math.max(...names.map((c) => seen.added.get(idOf(c)) ?? 0))
    const burstLag = names.map((c) => seen.added.get(idOf(c))! - times.started.get(c)!)

    // the agent's own share without Docker's: stopping deregisters all 100, a new agent registers them again
    const drainBegan = Date.now()
    await stopAgent(agent)
    await seen.until(() => names.every((c) => !seen.current.has(idOf(c))), BURST_TIMEOUT_MS, 'agent stop to drain')
    const drainMs = Date.now() - drainBegan
    const syncBegan = Date.now()
    agent = await startAgent(uri, hostname)
    await seen.until(() => names.every((c) => seen.current.has(idOf(c))), BURST_TIMEOUT_MS, 'agent start to sync')
    const syncMs = Date.now() - syncBegan

    const goneBegan = Date.now()
    await Promise.all(names.map((container) => docker.getContainer(container).remove({force: true})))
    await seen.until(() => names.every((c) => !seen.current.has(idOf(c))), BURST_TIMEOUT_MS, `${BURST} to go`)
    return {
      backend: name,
      start,
      stop,
      burstMs,
      burstAfterLastStartMs: lastSeen - lastStart,
      dockerSpanMs: lastStart - Math.min(...names.map((c) => times.started.get(c) ?? Infinity)),
      burstLag,
      burstGoneMs: Date.now() - goneBegan,
      drainMs,
      syncMs,
    }
  } finally {
    await removeAll()
    await stopAgent(agent)
    seen.close()
    await registry.close()
  }
}

/** The backend to measure: local in `root`, a URI from the environment, or a throwaway 1-member cluster. */
async function backendUri(name: string, root: string, clusters: ClusterManifest[]): Promise<string | undefined> {
  if (name === 'local') return `local://${path.join(root, 'local')}`
  const kind = name as ClusterKind
  const given = process.env[`SVC_BENCH_${kind.toUpperCase()}`]
  if (given) return given
  try {
    const manifest = await startCluster({
      kind,
      nodes: 1,
      name: `svc-bench-${kind}`,
      dir: path.join(root, kind),
      timeoutMs: 60_000,
    })
    clusters.push(manifest)
    return manifest.backendUri.replace(/\/services$/, '/svc-bench')
  } catch (error) {
    process.stderr.write(`bench: skipping ${kind}: ${error instanceof Error ? error.message : String(error)}\n`)
    return undefined
  }
}

async function main(): Promise<void> {
  const wanted = (process.env.SVC_BENCH_BACKENDS ?? 'local,zk,etcd,consul').split(',').map((b) => b.trim())
  const image = await ensureTestImage()
  const times = new DockerTimes()
  await times.open()
  const root = mkdtempSync(path.join(tmpdir(), 'svc-bench-'))
  const clusters: ClusterManifest[] = []
  const results: Result[] = []
  const stopAll = async (): Promise<void> => {
    times.close()
    await removeAll()
    await Promise.allSettled(clusters.map((m) => stopCluster(m)))
    rmSync(root, {recursive: true, force: true})
  }

  process.once('SIGINT', () => {
    stopAll().finally(() => process.exit(130))
  })
  try {
    for (const name of wanted) {
      const uri = await backendUri(name, root, clusters)
      if (!uri) continue
      process.stderr.write(`bench: ${name} (${uri}): ${COUNT} containers one by one, then ${BURST} at once\n`)
      try {
        results.push(await benchBackend(name, uri, image, times))
      } catch (error) {
        process.stderr.write(`bench: ${name} failed: ${error instanceof Error ? error.message : String(error)}\n`)
      }
    }
  } finally {
    await stopAll()
  }

  console.log(
    `svc agent latency (${COUNT} containers one by one; ${BURST} at once). Goals: p99 < 250 ms, ${BURST} < 10 s`,
  )
  console.log(
    'backend   start p50  start p99   stop p50   stop p99 | burst: all up  docker starts  after last start  lag p99  lag max   all gone | agent: sync all  drain all',
  )
  for (const r of results) {
    const columns = [
      ms(percentile(r.start, 50)),
      ms(percentile(r.start, 99)),
      ms(percentile(r.stop, 50)),
      ms(percentile(r.stop, 99)),
      `| ${ms(r.burstMs).padStart(12)}`,
      ms(r.dockerSpanMs).padStart(13),
      ms(r.burstAfterLastStartMs).padStart(16),
      ms(percentile(r.burstLag, 99)),
      ms(Math.max(...r.burstLag)),
      ms(r.burstGoneMs).padStart(9),
      `| ${ms(r.syncMs).padStart(14)}`,
      ms(r.drainMs).padStart(10),
    ]
    console.log(`${r.backend.padEnd(8)} ${columns.join('  ')}`)
  }

  console.log(
    `"all up" includes Docker starting ${BURST} containers at once ("docker starts": first to last start event); "after last start" and "lag" (start event to resolvable, per container) are the agent's; "sync all": a new agent's spawn until all ${BURST} running containers resolve; "drain all": its SIGTERM until all are gone`,
  )
  const failed = results.filter(
    (r) =>
      percentile(r.start, 99) >= 250 ||
      percentile(r.stop, 99) >= 250 ||
      r.burstAfterLastStartMs >= 10_000 ||
      r.syncMs >= 10_000,
  )
  if (failed.length > 0) console.log(`goal missed on: ${failed.map((r) => r.backend).join(', ')}`)
  process.exitCode = results.length === 0 ? 1 : 0
}

await main()
