import type Dockerode from 'dockerode'

import {errorMessage} from '../../errors.js'
import {runCheck, scheduleChecks} from '../../health/check.js'
import {sleep} from '../../registry/options.js'
import type {Health, Registry, RegistrationHandle, ServiceInstance} from '../../registry/types.js'
import {isSwarmInstance, removeStale} from '../cleanup.js'
import {type DockerEvent, type EventSubscription, subscribeEvents} from '../docker.js'
import {registerPlanned} from '../register-planned.js'
import type {AgentEvent, AgentEventBody, AgentOptions, PlannedService} from '../types.js'
import {converged, planSwarm} from './plan.js'
import {readSwarm} from './source.js'

/** How long one Docker request may take before it counts as failed. */
const DOCKER_REQUEST_MS = 5000
/** Events come in bursts (a scale starts many containers): one pass after the burst. */
const DEBOUNCE_MS = 100
/** Docker has no task events: after a service event, tasks are polled this often until they settle, this long at most. */
const POLL_MS = 500
const POLL_BOUND_MS = 30_000
const RECONNECT_FIRST_MS = 100
const RECONNECT_MAX_MS = 3000

export interface SwarmFollowerDeps {
  registry: Registry
  docker: Dockerode
  options: AgentOptions
}

interface Registration {
  planned: PlannedService
  handle: RegistrationHandle
  published: Health
  stopChecks?: () => void
  closed: boolean
}

/**
 * Keeps the registry equal to the swarm's published ports (see planSwarm): a full pass over services, tasks and
 * nodes on start, on every service, node and task-container event, on --resync, and while tasks settle.
 */
export class SwarmFollower {
  private readonly registry: Registry
  private readonly docker: Dockerode
  private readonly options: AgentOptions
  private readonly listeners = new Set<(e: AgentEvent) => void>()
  private readonly regs = new Map<string, Registration>()
  private readonly warned = new Set<string>()
  private running?: Promise<void>
  private again = false
  /** A start-up or --resync pass is due: it reports itself, and runs --cleanup after it. */
  private fullDue = false
  private counts = {registered: 0, deregistered: 0}
  private pollUntil = 0
  private timer?: NodeJS.Timeout
  private stopping = false

  constructor(deps: SwarmFollowerDeps) {
    this.registry = deps.registry
    this.docker = deps.docker
    this.options = deps.options
  }

  on(listener: (e: AgentEvent) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Follows the swarm until the signal aborts, then deregisters what it registered. */
  async start(signal: AbortSignal): Promise<void> {
    const aborted = new Promise<string>((resolve) => {
      if (signal.aborted) resolve('aborted')
      else signal.addEventListener('abort', () => resolve('aborted'), {once: true})
    })
    const resync =
      this.options.resyncMs === undefined ? undefined : setInterval(() => this.request(true), this.options.resyncMs)
    let subscription: EventSubscription | undefined
    try {
      for (let attempt = 0; !signal.aborted;) {
        try {
          subscription = await subscribeEvents(
            this.docker,
            ['service', 'node', 'container'],
            (e) => this.onEvent(e),
            DOCKER_REQUEST_MS,
          )
          // tasks may still be starting: poll them for a while, as after a service event
          this.pollUntil = Date.now() + POLL_BOUND_MS
          this.request(true)
          await this.settle()
          this.emit({type: 'docker', state: 'connected', detail: 'following Swarm services'})
          attempt = 0
          const reason = await Promise.race([subscription.ended, aborted])
          if (signal.aborted) break
          this.emit({type: 'docker', state: 'reconnecting', detail: `Swarm events: ${reason}`})
        } catch (error) {
          if (attempt === 0 || attempt % 10 === 0) {
            this.emit({type: 'docker', state: 'reconnecting', detail: `Swarm: ${errorMessage(error)}`})
          }
        }

        subscription?.close()
        await sleep(Math.min(RECONNECT_MAX_MS, RECONNECT_FIRST_MS * 2 ** attempt++), signal)
      }
    } finally {
      clearInterval(resync)
      subscription?.close()
      await this.shutdown()
    }
  }

  private onEvent(event: DockerEvent): void {
    if (event.Type === 'service') this.pollUntil = Date.now() + POLL_BOUND_MS
    // a container event matters only for a task's container: a task started, ended or was replaced
    if (event.Type === 'container' && !event.Actor.Attributes['com.docker.swarm.service.id']) return
    clearTimeout(this.timer)
    this.timer = setTimeout(() => this.request(false), DEBOUNCE_MS)
  }

  /** Asks for a pass (`full`: reported, with --cleanup); passes never overlap, one asked for during a pass runs after it. */
  private request(full: boolean): void {
    if (this.stopping) return
    this.fullDue ||= full
    if (this.running) {
      this.again = true
      return
    }

    this.running = this.passes().finally(() => {
      this.running = undefined
    })
  }

  /** Resolves when no pass runs. */
  private async settle(): Promise<void> {
    while (this.running) await this.running
  }

  private async passes(): Promise<void> {
    do {
      this.again = false
      const began = Date.now()
      const before = {...this.counts}
      const full = this.fullDue
      this.fullDue = false
      try {
        const settled = await this.pass()
        if (full && this.options.cleanup) await this.cleanup()
        if (full) {
          const registered = this.counts.registered - before.registered
          const removed = this.counts.deregistered - before.deregistered
          this.emit({type: 'resync', registered, removed, durationMs: Date.now() - began})
        }

        if (!settled && Date.now() < this.pollUntil && !this.stopping) {
          clearTimeout(this.timer)
          this.timer = setTimeout(() => this.request(false), POLL_MS)
        }
      } catch (error) {
        this.emit({type: 'error', message: `Swarm: ${errorMessage(error)}`})
      }
    } while (this.again && !this.stopping)
  }

  /** One full pass: plan from the swarm's state now, close what is no longer planned, open or update the rest. */
  private async pass(): Promise<boolean> {
    const state = await readSwarm(this.docker, DOCKER_REQUEST_MS)
    const {services: planned, warnings} = planSwarm(state, this.options)
    for (const warning of warnings) {
      if (!this.warned.has(warning)) this.emit({type: 'error', message: warning})
      this.warned.add(warning)
    }

    const names = new Set(state.services.map((s) => s.Spec?.Name))
    const desired = new Map(planned.map((p) => [p.input.id, p]))
    for (const [id, reg] of this.regs) {
      const want = desired.get(id)
      if (want && identity(want) === identity(reg.planned)) continue
      const gone = names.has(reg.planned.input.meta?.swarm_service) ? 'task or port gone' : 'service removed'
      await this.close(reg, want ? 'registration changed' : gone)
    }

    for (const plan of planned) {
      try {
        const reg = this.regs.get(plan.input.id)
        if (!reg) await this.open(plan)
        else if (labels(reg.planned) !== labels(plan)) await this.update(reg, plan)
      } catch (error) {
        // one instance that cannot be registered does not keep the others out
        this.emit({type: 'error', message: `${plan.input.service} ${plan.input.id}: ${errorMessage(error)}`})
      }
    }

    return converged(state)
  }

  private async open(planned: PlannedService): Promise<void> {
    const native = this.registry.nativeChecks
    const {check} = planned
    const first = check && !native ? await runCheck(check) : undefined
    const initial: Health = first?.health ?? 'passing'
    const name = planned.input.source.containerName
    const handle = await registerPlanned({
      registry: this.registry,
      planned,
      options: this.options,
      health: initial,
      container: name,
      emit: (body) => this.emit(body),
    })
    const reg: Registration = {planned, handle, published: initial, closed: false}
    this.regs.set(planned.input.id, reg)
    this.counts.registered++
    this.emit({type: 'registered', instance: {...handle.instance}, container: name})
    if (check && !native) {
      reg.stopChecks = scheduleChecks(check, async (result) => {
        if (reg.closed || result.health === reg.published) return
        await reg.handle.setHealth(result.health, result.output)
        reg.published = result.health
        const {service, id} = planned.input
        this.emit({type: 'health', service, id, health: result.health, output: result.output})
      })
    }
  }

  /** Tags and meta change in place: watchers see one `changed`, not a removal and an addition. */
  private async update(reg: Registration, planned: PlannedService): Promise<void> {
    await reg.handle.update({tags: planned.input.tags ?? [], meta: planned.input.meta ?? {}})
    reg.planned = planned
    this.emit({type: 'registered', instance: {...reg.handle.instance}, container: planned.input.source.containerName})
  }

  private async close(reg: Registration, reason: string): Promise<void> {
    reg.closed = true
    reg.stopChecks?.()
    this.regs.delete(reg.planned.input.id)
    await reg.handle.close()
    this.counts.deregistered++
    const {service, id, source} = reg.planned.input
    this.emit({type: 'deregistered', service, id, container: source.containerName, reason})
  }

  /** --cleanup: this host's Swarm instances that no service or task accounts for any more. */
  private async cleanup(): Promise<void> {
    const {regs} = this
    const keep = (instance: ServiceInstance): boolean => !isSwarmInstance(instance) || regs.has(instance.id)
    await removeStale(this.registry, this.options.hostname, keep, ({instance, container}) => {
      const {service, id} = instance
      this.counts.deregistered++
      this.emit({type: 'deregistered', service, id, container, reason: 'cleanup: no Swarm task or service'})
    })
  }

  private async shutdown(): Promise<void> {
    this.stopping = true
    clearTimeout(this.timer)
    await this.settle()
    const all = [...this.regs.values()]
    await Promise.allSettled(
      all.map((reg) =>
        this.close(reg, 'agent stopped').catch((error: unknown) =>
          this.emit({type: 'error', message: `deregistering ${reg.planned.input.id}: ${errorMessage(error)}`}),
        ),
      ),
    )
  }

  private emit(body: AgentEventBody): void {
    const event = {ts: Date.now(), ...body} as AgentEvent
    for (const listener of this.listeners) listener(event)
  }
}

/** What makes an instance a different registration: all but tags and meta, which change in place. */
function identity(planned: PlannedService): string {
  const input = {...planned.input, tags: undefined, meta: undefined, health: undefined}
  return JSON.stringify([input, planned.check ?? null, planned.ttlMs ?? null])
}

function labels(planned: PlannedService): string {
  return JSON.stringify([planned.input.tags ?? [], planned.input.meta ?? {}])
}
