import type Consul from 'consul'

import type {Binding, OwnedRecord, RecordKey} from '../core/driver.js'
import type {Health} from '../types.js'
import type {Agents} from './agents.js'
import type {Catalog} from './catalog.js'
import {ConsulError, forgotten} from './errors.js'
import type {OwnerCheck} from './owner-check.js'
import type {AgentListings} from './presence.js'
import {aliveCheckId, consulStatus, HEALTH_KEY, maintenanceCheckId, OWNER_NONCE_KEY, ttlCheckId} from './records.js'
import {hasNativeCheck, serviceDefinition, ttlCheck} from './service.js'

type CheckRegistration = Parameters<Consul['agent']['check']['register']>[0]

/** What every binding of one driver shares: the agents, the catalog, the owner check of each agent. */
export interface BindingContext {
  agents: Agents
  catalog: Catalog
  /** The owner check of this process on an agent (made on first use). */
  owner: (agent: number, record: OwnedRecord) => OwnerCheck
  /** The agents on which a write already waited for the catalog: later writes do not. */
  settled: Set<number>
  /** What each agent holds: presence for every binding from one listing per period. */
  listings: AgentListings
  /** Whether `binding` is still the one the driver holds for its id (not removed, not replaced). */
  current: (binding: ConsulBinding) => boolean
}

const LEFT_NOTES = 'left in place by the svc process that registered the service; no longer passed'
/** Bound for removing the copy left on an agent svc moved away from. */
const FORMER_MS = 2000

/**
 * One agent-service registration on the agent that took it. Without native checks its liveness is an alias of
 * the process's owner check, which `refresh` passes (one pass for all, coalesced); with native HTTP/TCP checks
 * Consul owns the health and `refresh` only verifies that the agent still knows it.
 */
export class ConsulBinding implements Binding {
  health: Health
  private output?: string
  private maintenance = false
  private released = false

  private readonly agents: Agents
  private readonly catalog: Catalog

  constructor(
    private readonly context: BindingContext,
    private record: OwnedRecord,
    readonly agent: number,
    /** Agents that held the registration before a fail-over; it is removed there once they answer again. */
    readonly formers: Set<number>,
    /** Liveness by a TTL check of its own, passed at every refresh (the token may not write the owner service). */
    private readonly ownTtl = false,
  ) {
    this.agents = context.agents
    this.catalog = context.catalog
    this.health = record.instance.health
  }

  get refreshMs(): number {
    return this.record.refreshMs
  }

  get key(): RecordKey {
    return {service: this.record.instance.service, id: this.record.instance.id}
  }

  get native(): boolean {
    return hasNativeCheck(this.record)
  }

  /** Registers the record on the current agent (failing over while none answers), its owner check first. */
  static async create(context: BindingContext, record: OwnedRecord, previous?: ConsulBinding): Promise<ConsulBinding> {
    const {agents} = context
    const health = record.instance.health
    const native = hasNativeCheck(record)
    const first = agents.active
    // the owner exists and passes before an alias names it, so that the instance never reads critical on the way in
    const firstOwner = native ? undefined : context.owner(first, record)
    const acquired = firstOwner
      ? await firstOwner.acquire(record.ttlMs).then(
          () => true,
          () => false,
        )
      : false
    // a token that may not write the owner service: this instance passes a TTL check of its own
    const own = !native && firstOwner?.refused !== undefined
    const held = acquired ? firstOwner : undefined
    // built outside the request, so that a meta Consul cannot hold is the caller's error, not the agent's
    const definition = serviceDefinition(record, health, own ? undefined : context.owner(first, record).serviceId)
    let agent: number
    try {
      ;({agent} = await agents.call((c, x) => c.agent.service.register({...definition, ...x})))
    } catch (error) {
      held?.release()
      throw error
    }

    const {name, id, tags, meta, port, address} = definition
    context.listings.added(agent, id, {ID: id, Service: name, Tags: tags, Meta: meta, Port: port, Address: address})
    // a write that failed over on the way holds the owner of the agent that took it
    const mine = context.owner(agent, record)
    if (!native && !own && held !== mine) {
      held?.release()
      await mine.acquire(record.ttlMs)
    }

    const formers = new Set(previous ? [...previous.formers, previous.agent] : [])
    formers.delete(agent)
    const binding = new ConsulBinding(context, record, agent, formers, own)
    if (previous) {
      binding.output = previous.output
      if (previous.maintenance) await binding.setMaintenance(true)
    }

    // a hand-set health carries its output; a failure here is the next refresh's or setHealth's to handle
    if (!native && (own || health !== 'passing')) await binding.setStatus().catch(() => {})
    // the first write on an agent waits for the catalog to show it (the agent syncs at once); later ones do not
    if (!context.settled.has(agent)) {
      await binding.settleVisible()
      context.settled.add(agent)
    }

    return binding
  }

  /** Presence on the agent (one listing per period for all); the owner check passes on its own timer. */
  async refresh(): Promise<'missing' | 'ok'> {
    let liveness: 'missing' | 'ok' = 'ok'
    try {
      // a TTL check of its own: a 404 to its pass says the agent forgot the instance
      if (this.ownTtl) await this.setStatus()
      const listed = await this.context.listings.get(this.agent, this.record.refreshMs / 2)
      if (listed.get(this.record.instance.id) === undefined) liveness = 'missing'
    } catch (error) {
      if (error instanceof ConsulError && forgotten(error)) return 'missing'
      if (!(error instanceof ConsulError) || !error.unreachable) throw error
      // the registration lives and dies with its agent: when another agent answers, it is gone, to be written there
      this.agents.failOver(this.agent, error)
      await this.agents.call((c, x) => c.status.leader({...x}), {deadlineMs: this.agents.defaultAttemptMs})
      return 'missing'
    }

    await this.removeFormers()
    return liveness
  }

  /**
   * Stops refreshing. A record left in place (closed without deregistering) gets a TTL check of its own instead of
   * the alias of an owner that lives on: it goes critical within its TTL and is reaped, as it always did.
   */
  async release(): Promise<void> {
    if (this.released) return
    this.released = true
    if (this.native || this.ownTtl) return
    try {
      await this.leave()
    } finally {
      this.context.owner(this.agent, this.record).release()
    }
  }

  /** A record its owner leaves in place without refreshing it: a TTL check of its own replaces the alias. */
  private async leave(): Promise<void> {
    if (!this.context.current(this)) return
    const {id} = this.record.instance
    // never touch a record another owner has taken over meanwhile
    const listed = (await this.context.listings.get(this.agent, this.record.refreshMs)).get(id) as
      {Meta?: Record<string, string>} | undefined
    if (listed?.Meta?.[OWNER_NONCE_KEY] !== this.record.owner.nonce) return
    const {checkid, ...check} = ttlCheck(this.record, this.health, LEFT_NOTES)
    await this.agents.attempt(
      this.agent,
      // the request's numeric timeout shares its name with a check field the consul package types as text
      (c, x) => c.agent.check.register({...check, id: checkid, serviceid: id, ...x} as unknown as CheckRegistration),
      this.agents.defaultAttemptMs,
    )
    await this.agents
      .attempt(
        this.agent,
        (c, x) => c.agent.check.deregister({id: aliveCheckId(id), ...x}),
        this.agents.defaultAttemptMs,
      )
      .catch(() => {})
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
      // the unknown marker lives in the service's meta, the hand-set check exists only off passing: register again
      const shape = (h: Health): string => `${h === 'unknown'}${h === 'passing' && !this.ownTtl}`
      if (shape(previous) !== shape(health)) await this.register()
      await (health === 'passing' && !this.ownTtl ? this.dropStatus() : this.setStatus())
    }

    await this.settleVisible()
  }

  private async register(): Promise<void> {
    const owner = this.ownTtl ? undefined : this.context.owner(this.agent, this.record).serviceId
    const definition = serviceDefinition(this.record, this.health, owner)
    await this.agents.attempt(
      this.agent,
      (c, x) => c.agent.service.register({...definition, ...x}),
      this.agents.defaultAttemptMs,
    )
  }

  /** The hand-set check's status and output (warning stands for unknown, with the meta marker). */
  private async setStatus(): Promise<void> {
    const {health} = this
    const id = ttlCheckId(this.record.instance.id)
    const note = this.output ?? `svc: ${health}`
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
      this.agents.defaultAttemptMs,
    )
  }

  /** Back to passing: the hand-set check goes (a service registered again may keep the check it had). */
  private async dropStatus(): Promise<void> {
    const id = ttlCheckId(this.record.instance.id)
    await this.agents
      .attempt(this.agent, (c, x) => c.agent.check.deregister({id, ...x}), this.agents.defaultAttemptMs)
      .catch((error: unknown) => {
        if (!(error instanceof ConsulError && forgotten(error))) throw error
      })
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
              (this.ownTtl || (e.Checks ?? []).some((c) => c.CheckID === aliveCheckId(id))) &&
              (want === 'passing' && !this.ownTtl
                ? !(e.Checks ?? []).some((c) => c.CheckID === ttlCheckId(id))
                : (e.Checks ?? []).some((c) => c.CheckID === ttlCheckId(id) && c.Status === want))),
      ),
    )
  }
}
