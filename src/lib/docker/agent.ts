import type Dockerode from 'dockerode'

import {errorMessage} from '../errors.js'
import {runCheck, scheduleChecks} from '../health/check.js'
import {sleep} from '../registry/options.js'
import type {Health, Registry, RegistrationHandle, ServiceInstance} from '../registry/types.js'
import {isSwarmInstance, removeStale} from './cleanup.js'
import {type DockerEvent, type EventSubscription, statusOf, subscribeContainerEvents, within} from './docker.js'
import {planContainerWithWarnings} from './mapping.js'
import {waitForBackend} from './backend-wait.js'
import {containerAction} from './container-events.js'
import {registerPlanned} from './register-planned.js'
import type {AgentEvent, AgentEventBody, AgentOptions, AgentSnapshot, ContainerState, PlannedService} from './types.js'

/** How long one Docker request (ping, inspect, list, subscribe) may take before it counts as failed. */
const DOCKER_REQUEST_MS = 5000
/** Reconnecting to a restarted daemon: first and longest pause between attempts. */
const RECONNECT_FIRST_MS = 100
const RECONNECT_MAX_MS = 3000
/** Events kept for the live view. */
const KEPT_EVENTS = 100

export interface AgentDeps {
  registry: Registry
  docker: Dockerode
  options: AgentOptions
  /** Advertised for host bindings on 0.0.0.0 / :: when --ip is not given. */
  hostAddress?: string
  /** Diagnostics that are not AgentEvents. */
  log?: (message: string) => void
}

interface Registration {
  planned: PlannedService
  /** The planned registration, serialized: a container whose plan changes (rename, new port) is registered anew. */
  key: string
  handle: RegistrationHandle
  stopChecks?: () => void
  /** Last result of the check the agent runs itself (backends without native checks). */
  checkHealth?: Health
  checkOutput?: string
  /** The health last published to the registry. */
  published: Health
  closed: boolean
}

interface Tracked {
  id: string
  name: string
  image: string
  running: boolean
  paused: boolean
  /** Docker HEALTHCHECK status, when the image has one. */
  dockerHealth?: string
  /** Mapping warnings already reported for this container. */
  warned: Set<string>
  /** Exited with a non-zero code under --deregister on-success: kept, critical. */
  exitCode?: number
  regs: Map<string, Registration>
}

/**
 * Keeps the registry equal to the running containers: registrator's semantics, plus reconnection to a restarted
 * daemon, cleanup on every backend, pause/health_status handling and agent-run checks where the backend has none.
 * Registry calls for one container are serialized; different containers proceed in parallel.
 */
export class Agent {
  private readonly registry: Registry
  private readonly docker: Dockerode
  private readonly options: AgentOptions
  private readonly hostAddress?: string
  private readonly log: (message: string) => void
  private readonly listeners = new Set<(e: AgentEvent) => void>()
  private readonly tracked = new Map<string, Tracked>()
  private readonly queues = new Map<string, Promise<void>>()
  private readonly recent: AgentEvent[] = []
  private dockerState: 'connected' | 'reconnecting' = 'reconnecting'
  /** Events that arrive while a full sync runs; applied after it. */
  private buffered?: DockerEvent[]
  private syncing = false
  private stopping = false
  private counts = {registered: 0, deregistered: 0}

  constructor(deps: AgentDeps) {
    this.registry = deps.registry
    this.docker = deps.docker
    this.options = deps.options
    this.hostAddress = deps.hostAddress
    this.log = deps.log ?? (() => {})
  }

  on(listener: (e: AgentEvent) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  snapshot(): AgentSnapshot {
    const containers: ContainerState[] = [...this.tracked.values()].map((t) => ({
      id: t.id,
      name: t.name,
      image: t.image,
      state: t.paused ? 'paused' : t.running ? 'running' : 'stopped',
      services: [...t.regs.values()].map((r): ServiceInstance => ({...r.handle.instance, health: r.published})),
    }))
    return {backend: this.registry.description, docker: this.dockerState, containers, events: [...this.recent]}
  }

  /** Runs until the signal aborts, then deregisters everything it registered and resolves. */
  async start(signal: AbortSignal): Promise<void> {
    await waitForBackend(this.registry, this.options, (body) => this.emit(body), signal)
    if (signal.aborted) return
    let subscription: EventSubscription | undefined
    let resync: NodeJS.Timeout | undefined
    const aborted = new Promise<string>((resolve) => {
      if (signal.aborted) resolve('aborted')
      else signal.addEventListener('abort', () => resolve('aborted'), {once: true})
    })
    try {
      subscription = await this.subscribeAndSync()
      this.setDocker('connected', 'following container events')
      if (this.options.resyncMs !== undefined) {
        resync = setInterval(() => {
          if (this.dockerState === 'connected' && !this.syncing) {
            this.sync().catch((error: unknown) => this.emit({type: 'error', message: errorMessage(error)}))
          }
        }, this.options.resyncMs)
      }

      while (subscription && !signal.aborted) {
        const reason = await Promise.race([subscription.ended, aborted])
        subscription.close()
        if (signal.aborted) break
        this.setDocker('reconnecting', reason)
        subscription = await this.reconnect(signal)
      }
    } finally {
      clearInterval(resync)
      subscription?.close()
      await this.shutdown()
    }
  }

  /** Subscribes to events first, then lists: nothing that happens in between is missed; events wait for the sync. */
  private async subscribeAndSync(): Promise<EventSubscription> {
    this.buffered = []
    let subscription: EventSubscription | undefined
    try {
      subscription = await subscribeContainerEvents(
        this.docker,
        (event) => this.onDockerEvent(event),
        DOCKER_REQUEST_MS,
      )
      await this.sync()
    } catch (error) {
      subscription?.close()
      throw error
    } finally {
      const pending = this.buffered
      this.buffered = undefined
      for (const event of pending) this.apply(event)
    }

    return subscription
  }

  private async reconnect(signal: AbortSignal): Promise<EventSubscription | undefined> {
    let delay = RECONNECT_FIRST_MS
    for (let attempt = 1; !signal.aborted; attempt++) {
      try {
        await within(this.docker.ping(), DOCKER_REQUEST_MS, 'docker ping')
        const subscription = await this.subscribeAndSync()
        this.setDocker('connected', `reconnected after ${attempt} attempt${attempt === 1 ? '' : 's'}`)
        return subscription
      } catch (error) {
        if (attempt === 1 || attempt % 10 === 0)
          this.emit({type: 'docker', state: 'reconnecting', detail: `attempt ${attempt}: ${errorMessage(error)}`})
        await sleep(delay, signal)
        delay = Math.min(RECONNECT_MAX_MS, delay * 2)
      }
    }

    return undefined
  }

  private setDocker(state: 'connected' | 'reconnecting', detail: string): void {
    this.dockerState = state
    this.emit({type: 'docker', state, detail})
  }

  /** Lists the running containers and reconciles each, and each container the agent tracks; then --cleanup. */
  private async sync(): Promise<void> {
    this.syncing = true
    const began = Date.now()
    const before = {...this.counts}
    try {
      const list = await within(this.docker.listContainers(), DOCKER_REQUEST_MS, 'docker list')
      const running = new Set(list.map((c) => c.Id))
      const ids = new Set([...running, ...this.tracked.keys()])
      await Promise.all([...ids].map((id) => this.enqueue(id, () => this.reconcile(id))))
      if (this.options.cleanup) await this.cleanup(running)
    } finally {
      this.syncing = false
    }

    this.emit({
      type: 'resync',
      registered: this.counts.registered - before.registered,
      removed: this.counts.deregistered - before.deregistered,
      durationMs: Date.now() - began,
    })
  }

  private onDockerEvent(event: DockerEvent): void {
    if (this.buffered) this.buffered.push(event)
    else this.apply(event)
  }

  private apply(event: DockerEvent): void {
    if (this.stopping) return
    if (event.timeNano) this.emit({type: 'event-lag', ms: Math.max(0, Date.now() - event.timeNano / 1e6)})
    const id = event.Actor.ID
    const action = containerAction(event)
    switch (action?.kind) {
      case 'reconcile': {
        this.enqueue(id, () => this.reconcile(id))
        break
      }

      case 'exited': {
        this.enqueue(id, () => this.exited(id, action.exitCode))
        break
      }

      case 'drop': {
        this.enqueue(id, () => this.drop(id, action.reason))
        break
      }

      case 'health': {
        this.enqueue(id, () => this.setContainerHealth(id, action.status))
        break
      }

      case undefined: {
        break
      }
    }
  }

  /** Runs `fn` after everything queued for this container; one container's registry calls never interleave. */
  private enqueue(containerId: string, fn: () => Promise<void>): Promise<void> {
    const previous = this.queues.get(containerId) ?? Promise.resolve()
    const next = previous.then(fn).catch((error: unknown) => {
      const name = this.tracked.get(containerId)?.name ?? containerId.slice(0, 12)
      this.emit({type: 'error', message: `container ${name}: ${errorMessage(error)}`, container: name})
    })
    this.queues.set(containerId, next)
    next.finally(() => {
      if (this.queues.get(containerId) === next) this.queues.delete(containerId)
    })
    return next
  }

  /** Brings one container's registrations in line with what Docker says about it now. */
  private async reconcile(containerId: string): Promise<void> {
    if (this.stopping) return
    let info: Dockerode.ContainerInspectInfo
    try {
      info = await within(this.docker.getContainer(containerId).inspect(), DOCKER_REQUEST_MS, 'docker inspect')
    } catch (error) {
      if (statusOf(error) === 404) return this.drop(containerId, 'container removed')
      throw error
    }

    if (!info.State.Running) return this.exited(containerId, info.State.ExitCode)
    const name = info.Name.replace(/^\//, '')
    let planned: PlannedService[]
    let warnings: string[]
    try {
      ;({services: planned, warnings} = planContainerWithWarnings(info, this.options, this.hostAddress))
    } catch (error) {
      this.emit({type: 'error', message: `container ${name}: ${errorMessage(error)}`, container: name})
      return
    }

    const warned = this.tracked.get(info.Id)?.warned ?? new Set<string>()
    this.warnOnce(warnings, warned, name)

    let tracked = this.tracked.get(info.Id)
    if (!tracked) {
      if (planned.length === 0) return
      tracked = {id: info.Id, name, image: info.Config.Image, running: true, paused: false, warned, regs: new Map()}
      this.tracked.set(info.Id, tracked)
    }

    tracked.name = name
    tracked.running = true
    tracked.paused = info.State.Paused
    tracked.dockerHealth = info.State.Health?.Status
    tracked.exitCode = undefined
    await this.syncRegistrations(tracked, planned, name)
    if (tracked.regs.size === 0) this.tracked.delete(tracked.id)
  }

  /** Emits each planning warning once per container, not on every reconcile. */
  private warnOnce(warnings: string[], warned: Set<string>, name: string): void {
    for (const warning of warnings) {
      if (!warned.has(warning)) this.emit({type: 'error', message: warning, container: name})
      warned.add(warning)
    }
  }

  /** Closes the registrations no longer planned (or planned differently), then opens or republishes the rest. */
  private async syncRegistrations(tracked: Tracked, planned: PlannedService[], name: string): Promise<void> {
    const desired = new Map(planned.map((p) => [p.input.id, p]))
    for (const [id, reg] of tracked.regs) {
      const want = desired.get(id)
      if (!want || keyOf(want) !== reg.key) await this.close(tracked, reg, want ? 'registration changed' : 'port gone')
    }

    for (const plan of planned) {
      const reg = tracked.regs.get(plan.input.id)
      try {
        await (reg ? this.publish(tracked, reg) : this.open(tracked, plan))
      } catch (error) {
        // one port that cannot be registered does not keep the others out
        const message = `container ${name}: ${plan.input.service} ${plan.input.id}: ${errorMessage(error)}`
        this.emit({type: 'error', message, container: name})
      }
    }
  }

  private async open(tracked: Tracked, planned: PlannedService): Promise<void> {
    const native = this.registry.nativeChecks
    const check = planned.check
    const reg: Partial<Registration> & {planned: PlannedService; closed: boolean} = {planned, closed: false}
    if (check && !native) {
      const first = await runCheck(check)
      reg.checkHealth = first.health
      reg.checkOutput = first.output
    }

    // Consul's native checks own the health; critical there means maintenance mode, set after registering
    const initial: Health = native && check ? 'passing' : this.effective(tracked, {checkHealth: reg.checkHealth})
    const handle = await registerPlanned({
      registry: this.registry,
      planned,
      options: this.options,
      health: initial,
      container: tracked.name,
      emit: (body) => this.emit(body),
    })
    const registration: Registration = {...reg, handle, key: keyOf(planned), published: initial}
    tracked.regs.set(planned.input.id, registration)
    this.counts.registered++
    this.emit({type: 'registered', instance: {...handle.instance}, container: tracked.name})
    if (initial !== this.effective(tracked, registration)) await this.publish(tracked, registration)
    if (check && !native) {
      registration.stopChecks = scheduleChecks(check, (result) => {
        if (registration.closed) return
        registration.checkHealth = result.health
        registration.checkOutput = result.output
        this.enqueue(tracked.id, () => this.publish(tracked, registration))
      })
    }
  }

  private async close(tracked: Tracked, reg: Registration, reason: string): Promise<void> {
    reg.closed = true
    reg.stopChecks?.()
    tracked.regs.delete(reg.planned.input.id)
    await reg.handle.close()
    this.counts.deregistered++
    const {id, service} = reg.planned.input
    this.emit({type: 'deregistered', service, id, container: tracked.name, reason})
  }

  /** Why the container's instances are critical regardless of checks, if they are. */
  private override(tracked: Tracked): string | undefined {
    if (tracked.paused) return 'container paused'
    if (tracked.dockerHealth === 'unhealthy') return 'Docker health check: unhealthy'
    if (tracked.exitCode !== undefined) return `container exited with code ${tracked.exitCode}`
    return undefined
  }

  private effective(tracked: Tracked, reg: Pick<Registration, 'checkHealth'>): Health {
    if (this.override(tracked)) return 'critical'
    if (tracked.dockerHealth === 'starting' && reg.checkHealth !== 'critical') return 'unknown'
    return reg.checkHealth ?? 'passing'
  }

  private async publish(tracked: Tracked, reg: Registration): Promise<void> {
    if (reg.closed || this.stopping) return
    const health = this.effective(tracked, reg)
    if (health === reg.published) return
    const output =
      this.override(tracked) ??
      reg.checkOutput ??
      (tracked.dockerHealth ? `Docker health check: ${tracked.dockerHealth}` : 'container running')
    await reg.handle.setHealth(health, output)
    reg.published = health
    const {id, service} = reg.planned.input
    this.emit({type: 'health', service, id, health, output})
  }

  private async exited(containerId: string, exitCode: number | undefined): Promise<void> {
    const tracked = this.tracked.get(containerId)
    if (!tracked) return
    tracked.running = false
    tracked.paused = false
    if (this.options.deregister === 'on-success' && exitCode !== undefined && exitCode !== 0) {
      tracked.exitCode = exitCode
      for (const reg of tracked.regs.values()) await this.publish(tracked, reg)
      return
    }

    await this.drop(
      containerId,
      exitCode === undefined ? 'container stopped' : `container exited with code ${exitCode}`,
    )
  }

  private async drop(containerId: string, reason: string): Promise<void> {
    const tracked = this.tracked.get(containerId)
    if (!tracked) return
    this.tracked.delete(containerId)
    for (const reg of tracked.regs.values()) await this.close(tracked, reg, reason)
  }

  private async setContainerHealth(containerId: string, status: string): Promise<void> {
    const tracked = this.tracked.get(containerId)
    if (!tracked) return
    tracked.dockerHealth = status
    for (const reg of tracked.regs.values()) await this.publish(tracked, reg)
  }

  /** --cleanup: removes instances this host registered whose container no longer runs, on every backend. */
  private async cleanup(running: Set<string>): Promise<void> {
    const isRunning = (id: string): boolean =>
      [...running].some((r) => r === id || (id.length >= 12 && r.startsWith(id)))
    const ours = new Set<string>()
    for (const tracked of this.tracked.values()) for (const id of tracked.regs.keys()) ours.add(id)
    const keep = (instance: ServiceInstance): boolean =>
      isRunning(instance.source?.containerId ?? '') || ours.has(instance.id) || isSwarmInstance(instance)
    await removeStale(this.registry, this.options.hostname, keep, ({instance, container}) => {
      this.counts.deregistered++
      const {service, id} = instance
      this.emit({type: 'deregistered', service, id, container, reason: 'cleanup: container no longer runs'})
    })
  }

  private async shutdown(): Promise<void> {
    this.stopping = true
    await Promise.allSettled(this.queues.values())
    const all = [...this.tracked.values()]
    this.tracked.clear()
    await Promise.allSettled(
      all.flatMap((tracked) =>
        [...tracked.regs.values()].map((reg) =>
          this.close(tracked, reg, 'agent stopped').catch((error: unknown) =>
            this.emit({type: 'error', message: `deregistering ${reg.planned.input.id}: ${errorMessage(error)}`}),
          ),
        ),
      ),
    )
    this.log('agent stopped')
  }

  private emit(body: AgentEventBody): void {
    const event = {ts: Date.now(), ...body} as AgentEvent
    if (event.type !== 'event-lag') {
      this.recent.push(event)
      if (this.recent.length > KEPT_EVENTS) this.recent.shift()
    }

    for (const listener of this.listeners) {
      try {
        listener(event)
      } catch (error) {
        this.log(`an agent event listener failed: ${errorMessage(error)}`)
      }
    }
  }
}

/** What identifies a registration; health is not part of it (it changes in place). */
function keyOf(planned: PlannedService): string {
  const input = {...planned.input, health: undefined}
  return JSON.stringify([input, planned.check ?? null, planned.ttlMs ?? null])
}
