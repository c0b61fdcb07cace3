import {formatDuration} from '../duration.js'
import {errorMessage, NotFoundError, UserError} from '../errors.js'
import {sleep} from '../cluster/process.js'
import type {Registry, ServiceInstance, WatchEvent} from '../registry/types.js'
import {checkLoadUrl, Load, type LoadSummary} from './load.js'
import {
  type DrillSignal,
  isLocalAddress,
  locateTarget,
  stopTarget,
  summarizeTarget,
  type Target,
  type TargetSummary,
} from './targets.js'
import {plural} from '../text.js'

const PROGRESS_EVERY_MS = 5000

export interface InstancePlan {
  instance: ServiceInstance
  target: Target
}

export interface KillInstancePlan {
  service: string
  /** Instances of the service before the drill. */
  before: number
  victims: InstancePlan[]
}

export interface KillInstanceReport {
  drill: 'kill-instance'
  service: string
  uri: string
  signal: 'KILL' | 'TERM'
  before: number
  instances: Array<{
    id: string
    address: string
    port: number
    target: TargetSummary
    stoppedAt?: string
    /** From the stop to the moment it no longer resolved (removed, or marked unhealthy). */
    goneMs?: number
    how?: 'removed' | 'unhealthy'
    error?: string
  }>
  load?: LoadSummary
  problems: string[]
  ok: boolean
}

const healthy = (i: ServiceInstance): boolean => i.health === 'passing' || i.health === 'warning'

/** What runs one instance: its container (the agent's source) or the local process listening on its port. */
async function instanceTarget(instance: ServiceInstance): Promise<Target> {
  const where = `${instance.address}:${instance.port}`
  if (instance.source?.containerId) {
    const {connectDocker} = await import('../docker/docker.js')
    const docker = await connectDocker(undefined, 5000)
    const container = docker.getContainer(instance.source.containerId)
    let info
    try {
      info = await container.inspect()
    } catch {
      throw new UserError(
        `instance ${instance.id} comes from container ${instance.source.containerName} (${instance.source.containerId.slice(0, 12)}), which is not on this machine's Docker`,
        'run the drill on the Docker host that runs it',
      )
    }

    return {
      kind: 'container',
      id: info.Id,
      name: info.Name.replace(/^\//, ''),
      image: info.Config.Image,
      docker,
    }
  }

  if (!isLocalAddress(instance.address)) {
    throw new UserError(
      `instance ${instance.id} at ${where} is not on this machine`,
      'svc chaos stops only local containers and processes: run it on the machine that runs the instance',
    )
  }

  return locateTarget(instance.address, instance.port)
}

/** Picks `count` healthy instances of the service (in a random order) and finds what runs each; stops nothing. */
export async function planKillInstance(registry: Registry, service: string, count: number): Promise<KillInstancePlan> {
  const all = await registry.listInstances(service)
  const candidates = all.filter((i) => healthy(i))
  if (candidates.length === 0) {
    throw new NotFoundError(
      `no healthy instance of "${service}" on ${registry.description} (${all.length} registered)`,
      `see them with: svc resolve ${service} --all`,
    )
  }

  if (count > candidates.length) {
    throw new UserError(
      `--count ${count} but "${service}" has only ${candidates.length} healthy instances`,
      `use --count ${candidates.length} or less`,
    )
  }

  const shuffled = candidates
    .map((i) => ({i, r: Math.random()}))
    .sort((a, b) => a.r - b.r)
    .map(({i}) => i)
  const victims: InstancePlan[] = []
  for (const instance of shuffled.slice(0, count)) victims.push({instance, target: await instanceTarget(instance)})
  return {service, before: all.length, victims}
}

export interface KillInstanceOptions {
  signal: Extract<DrillSignal, 'SIGKILL' | 'SIGTERM'>
  /** Bound on waiting for every instance to leave. */
  timeoutMs: number
  proxy?: string
  ratePerSecond?: number
  maxRequests?: number
  log?: (message: string) => void
}

/**
 * Stops what runs each chosen instance and measures, through the registry's watch, how long until each no longer
 * resolves (removed, or marked critical); with a proxy URL, a bounded load runs from 1 s before the stop until 1 s
 * after the last instance left.
 */
export async function runKillInstance(
  registry: Registry,
  plan: KillInstancePlan,
  opts: KillInstanceOptions,
): Promise<KillInstanceReport> {
  const log = opts.log ?? (() => {})
  const problems: string[] = []
  const report: KillInstanceReport = {
    drill: 'kill-instance',
    service: plan.service,
    uri: registry.description,
    signal: opts.signal === 'SIGKILL' ? 'KILL' : 'TERM',
    before: plan.before,
    instances: plan.victims.map((v) => ({
      id: v.instance.id,
      address: v.instance.address,
      port: v.instance.port,
      target: summarizeTarget(v.target),
    })),
    problems,
    ok: false,
  }
  const url = opts.proxy === undefined ? undefined : checkLoadUrl(opts.proxy)
  const load = url
    ? new Load(url, opts.ratePerSecond ?? 20, opts.maxRequests ?? 2000, opts.timeoutMs + 10_000)
    : undefined

  const stoppedAt = new Map<string, number>()
  const goneAt = new Map<string, {at: number; how: 'removed' | 'unhealthy'}>()
  const wanted = new Set(plan.victims.map((v) => v.instance.id))
  const controller = new AbortController()
  let ready!: () => void
  const snapshotSeen = new Promise<void>((resolve) => {
    ready = resolve
  })
  const watching = (async () => {
    try {
      for await (const event of registry.watch(plan.service, {signal: controller.signal})) {
        if (event.type === 'snapshot') ready()
        noteGone(event, wanted, goneAt, Date.now())
        if (goneAt.size === wanted.size) break
      }
    } catch (error) {
      if (!controller.signal.aborted) problems.push(`watch failed: ${errorMessage(error)}`)
    } finally {
      ready()
    }
  })()

  try {
    await Promise.race([snapshotSeen, sleep(10_000)])
    if (load) {
      load.start()
      await sleep(1000)
    }

    // one stop per container or process, even if it serves several of the instances
    const done = new Map<string, Promise<void>>()
    for (const [i, victim] of plan.victims.entries()) {
      const key = stopKey(victim.target)
      const entry = report.instances[i]!
      stoppedAt.set(victim.instance.id, Date.now())
      entry.stoppedAt = new Date().toISOString()
      if (!done.has(key)) {
        log(`stopping ${summarizeTarget(victim.target).description}`)
        done.set(key, stopTarget(victim.target, opts.signal))
      }

      try {
        await done.get(key)
      } catch (error) {
        entry.error = errorMessage(error)
        problems.push(`could not stop ${entry.target.description}: ${entry.error}`)
        wanted.delete(victim.instance.id)
      }
    }

    const started = Date.now()
    const deadline = started + opts.timeoutMs
    let shown = started
    while (goneAt.size < wanted.size && Date.now() < deadline) {
      await sleep(50)
      // a long wait must not look like a hang
      if (Date.now() - shown >= PROGRESS_EVERY_MS && goneAt.size < wanted.size) {
        shown = Date.now()
        const left = wanted.size - goneAt.size
        log(
          `waiting for ${plural(left, 'instance')} to leave the registry (${formatDuration(shown - started)} of ${formatDuration(opts.timeoutMs)})`,
        )
      }
    }

    if (load) await sleep(1000)
  } finally {
    controller.abort()
    await Promise.race([watching, sleep(2000)])
    if (load) report.load = await load.stop()
  }

  recordOutcomes(report, stoppedAt, goneAt, opts.timeoutMs)
  report.ok = problems.length === 0
  return report
}

/** Notes the moment a watched instance left: removed, or turned unhealthy; only the first sighting counts. */
function noteGone(
  event: WatchEvent,
  wanted: Set<string>,
  goneAt: Map<string, {at: number; how: 'removed' | 'unhealthy'}>,
  now: number,
): void {
  if (event.type !== 'removed' && event.type !== 'changed') return
  const {id} = event.instance
  if (!wanted.has(id) || goneAt.has(id)) return
  if (event.type === 'removed') goneAt.set(id, {at: now, how: 'removed'})
  else if (!healthy(event.instance)) goneAt.set(id, {at: now, how: 'unhealthy'})
}

/** One key per container or process, so one that serves several instances is stopped once. */
function stopKey(target: Target): string {
  return target.kind === 'container' ? target.id : `${target.kind}:${'pid' in target ? target.pid : ''}`
}

/** Fills in each instance's time to leave, or a problem for each that never left and had no stop error. */
function recordOutcomes(
  report: KillInstanceReport,
  stoppedAt: Map<string, number>,
  goneAt: Map<string, {at: number; how: 'removed' | 'unhealthy'}>,
  timeoutMs: number,
): void {
  for (const entry of report.instances) {
    const gone = goneAt.get(entry.id)
    const stopped = stoppedAt.get(entry.id)
    if (gone && stopped !== undefined) {
      entry.goneMs = Math.max(0, gone.at - stopped)
      entry.how = gone.how
    } else if (!entry.error)
      report.problems.push(
        `${entry.id} still resolves after ${formatDuration(timeoutMs)}: nothing told the registry it is gone; give it a health check (svc register --check-tcp, SERVICE_CHECK_TCP for the agent) or a shorter --ttl`,
      )
  }
}
