import type {Binding, OwnedRecord} from '../core/driver.js'
import type {Health} from '../types.js'
import type {Agents} from './agents.js'
import type {Catalog} from './catalog.js'
import {ConsulError, forgotten} from './errors.js'
import {consulStatus, HEALTH_KEY, maintenanceCheckId, ttlCheckId} from './records.js'
import {hasNativeCheck, serviceDefinition} from './service.js'

/** Bound for removing the copy left on an agent svc moved away from. */
const FORMER_MS = 2000

/**
 * One agent-service registration on the agent that took it. A TTL registration is kept passing by `refresh`;
 * with native HTTP/TCP checks Consul owns the health and `refresh` only verifies that the agent still knows it.
 */
export class ConsulBinding implements Binding {
  health: Health
  private output?: string
  private maintenance = false
  private released = false

  constructor(
    private readonly agents: Agents,
    private readonly catalog: Catalog,
    private record: OwnedRecord,
    readonly agent: number,
    /** Agents that held the registration before a fail-over; it is removed there once they answer again. */
    readonly formers: Set<number>,
  ) {
    this.health = record.instance.health
  }

  get native(): boolean {
    return hasNativeCheck(this.record)
  }

  /** Registers the record on the current agent (failing over while none answers); a first heartbeat sets the output. */
  static async create(
    agents: Agents,
    catalog: Catalog,
    record: OwnedRecord,
    previous?: ConsulBinding,
  ): Promise<ConsulBinding> {
    const health = record.instance.health
    // built outside the request, so that a meta Consul cannot hold is the caller's error, not the agent's
    const definition = serviceDefinition(record, health)
    const {agent} = await agents.call((c, x) => c.agent.service.register({...definition, ...x}))
    const formers = new Set(previous ? [...previous.formers, previous.agent] : [])
    formers.delete(agent)
    const binding = new ConsulBinding(agents, catalog, record, agent, formers)
    if (previous) {
      binding.output = previous.output
      if (previous.maintenance) await binding.setMaintenance(true)
    }

    // the TTL check starts passing already; a failure here is the next refresh's to handle
    if (!binding.native) await binding.heartbeat().catch(() => {})
    await binding.settleVisible()
    return binding
  }

  async refresh(): Promise<'missing' | 'ok'> {
    try {
      await (this.native ? this.verifyPresence() : this.heartbeat())
    } catch (error) {
      if (error instanceof ConsulError && forgotten(error)) return 'missing'
      if (!(error instanceof ConsulError) || !error.unreachable) throw error
      // the registration lives and dies with its agent: when another agent answers, it is gone, to be written there
      this.agents.failOver(this.agent, error)
      await this.agents.call((c, x) => c.status.leader({...x}), {deadlineMs: this.agents.defaultAttemptMs})
      return 'missing'
    }

    await this.removeFormers()
    return 'ok'
  }

  async release(): Promise<void> {
    this.released = true
  }

  /** Replaces tags and meta: Consul updates a service registered again under the same id in place. */
  async rewrite(record: OwnedRecord): Promise<void> {
    this.record = record
    await this.register()
    await this.settleVisible()
  }

  /**
   * TTL registrations: passing/warning/critical on the TTL check (`unknown` is stored as warning plus a meta
   * marker). Native-check registrations: `critical` is maintenance mode, any other value ends it.
   */
  async setHealth(health: Health, output?: string): Promise<void> {
    const previous = this.health
    this.health = health
    this.output = output
    if (this.native) {
      const enable = health === 'critical'
      if (enable === this.maintenance) return
      await this.setMaintenance(enable)
    } else {
      // the unknown marker lives in the service's meta: register again (same agent, same id) to change it
      if ((previous === 'unknown') !== (health === 'unknown')) await this.register()
      await this.heartbeat()
    }

    await this.settleVisible()
  }

  private async register(): Promise<void> {
    const definition = serviceDefinition(this.record, this.health)
    await this.agents.attempt(
      this.agent,
      (c, x) => c.agent.service.register({...definition, ...x}),
      this.agents.defaultAttemptMs,
    )
  }

  private async heartbeat(): Promise<void> {
    const {health} = this
    const id = ttlCheckId(this.record.instance.id)
    const note = this.output ?? `svc: ${health}`
    const timeout = Math.min(this.record.refreshMs, this.agents.defaultAttemptMs)
    await this.agents.attempt(
      this.agent,
      (c, x) => {
        const opts = {id, note, ...x}
        return health === 'passing'
          ? c.agent.check.pass(opts)
          : health === 'critical'
            ? c.agent.check.fail(opts)
            : c.agent.check.warn(opts)
      },
      timeout,
    )
  }

  private async verifyPresence(): Promise<void> {
    const {id} = this.record.instance
    const services = await this.agents.attempt(
      this.agent,
      (c, x) => c.agent.service.list({filter: `ID == "${id}"`, ...x}),
      Math.min(this.record.refreshMs, this.agents.defaultAttemptMs),
    )
    if (!services || typeof services !== 'object' || !(id in services)) {
      throw new ConsulError(`agent ${this.agents.name(this.agent)} does not know ${id}`, {
        status: 404,
        transient: false,
      })
    }
  }

  private async setMaintenance(enable: boolean): Promise<void> {
    const reason = enable ? (this.output ?? 'set critical by svc') : undefined
    const {id} = this.record.instance
    await this.agents.attempt(
      this.agent,
      (c, x) => c.agent.service.maintenance({id, enable, ...(reason ? {reason} : {}), ...x}),
      this.agents.defaultAttemptMs,
    )
    this.maintenance = enable
  }

  /** The copies left on agents svc moved away from; two addresses of one agent hold the same copy. */
  private async removeFormers(): Promise<void> {
    for (const former of this.formers) {
      if (this.released) return
      const [formerNode, ownNode] = await Promise.all([
        this.catalog.nodeName(former),
        this.catalog.nodeName(this.agent),
      ])
      if (formerNode === undefined || formerNode !== ownNode) {
        const {id} = this.record.instance
        const removed = await this.agents
          .attempt(former, (c, x) => c.agent.service.deregister({id, ...x}), FORMER_MS)
          .then(
            () => true,
            (error: unknown) => error instanceof ConsulError && forgotten(error),
          )
        if (!removed) continue
      }

      this.formers.delete(former)
    }
  }

  /** Waits until the catalog shows the instance with the health svc set, on the agent that holds it. */
  private async settleVisible(): Promise<void> {
    const {id, service} = this.record.instance
    const node = await this.catalog.nodeName(this.agent)
    const want = this.native ? undefined : consulStatus(this.health)
    const unknown = this.health === 'unknown'
    await this.catalog.settle(service, this.agent, (entries) =>
      entries.some(
        (e) =>
          e.Service.ID === id &&
          (node === undefined || e.Node.Node === node) &&
          (want === undefined
            ? (e.Checks ?? []).some((c) => c.CheckID === maintenanceCheckId(id)) === this.maintenance
            : (e.Service.Meta?.[HEALTH_KEY] === 'unknown') === unknown &&
              (e.Checks ?? []).some((c) => c.CheckID === ttlCheckId(id) && c.Status === want)),
      ),
    )
  }
}
