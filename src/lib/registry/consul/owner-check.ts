import type {Owner} from '../core/driver.js'
import type {Agents} from './agents.js'
import {ConsulError, forgotten} from './errors.js'
import {OWNER_SERVICE, ownerMeta, ttlCheckId} from './records.js'

/** Consul refuses a DeregisterCriticalServiceAfter below one minute. */
const MIN_DEREGISTER_AFTER_MS = 60_000
/** The pass note never changes, so that a pass is no catalog write (Consul syncs output changes only). */
const NOTE = 'svc: the registering process is alive'

/** Marks the owner services in their meta. */
const ROLE_KEY = 'svc_role'

const ms = (value: number): string => `${Math.max(1, Math.round(value))}ms`

/** `svc-owner-<host>-<pid>-<nonce>`: what the instances' alias checks name. */
export function ownerServiceId(owner: Owner): string {
  const host = owner.host.replaceAll(/[^\w.-]/g, '_').slice(0, 64)
  return `${OWNER_SERVICE}-${host}-${owner.pid}-${owner.nonce}`
}

/**
 * One TTL check per process and agent, the liveness of every instance this process registered there: each
 * instance's check aliases it, so one pass per period (a third of the shortest TTL held) keeps them all passing,
 * and when the process dies they go critical together and Consul reaps them.
 */
export class OwnerCheck {
  readonly serviceId: string
  private registered?: Promise<void>
  private ttlMs = Number.POSITIVE_INFINITY
  private holders = 0
  private timer?: NodeJS.Timeout
  private passedAt = 0
  private passing = false
  /** The token may not write the owner service: every instance on this agent carries a TTL check of its own. */
  refused?: ConsulError

  constructor(
    private readonly agents: Agents,
    private readonly agent: number,
    private readonly owner: Owner,
  ) {
    this.serviceId = ownerServiceId(owner)
  }

  /**
   * One more instance aliases the owner: registered (passing) before the instance names it, passed now if the
   * last pass is old, and re-registered when this record needs a shorter TTL.
   */
  async acquire(ttlMs: number): Promise<void> {
    if (this.refused) throw this.refused
    this.holders++
    try {
      await this.ensure(ttlMs)
      if (Date.now() - this.passedAt > this.ttlMs / 3) await this.pass()
    } catch (error) {
      if (error instanceof ConsulError && error.status === 403 && !this.refused) {
        this.refused = error
        this.agents.options.log(
          `consul: the token may not write service "${OWNER_SERVICE}", so each instance passes a TTL check of its own; grant service "${OWNER_SERVICE}" { policy = "write" } for one check per process`,
        )
      }

      this.release()
      throw error
    }

    this.schedule()
  }

  /** One instance fewer; with none left the owner goes (nothing aliases it). */
  release(): void {
    this.holders = Math.max(0, this.holders - 1)
    if (this.holders > 0) return
    clearTimeout(this.timer)
    this.timer = undefined
    if (!this.registered) return
    this.registered = undefined
    this.ttlMs = Number.POSITIVE_INFINITY
    this.agents
      .attempt(
        this.agent,
        (c, x) => c.agent.service.deregister({id: this.serviceId, ...x}),
        Math.min(2000, this.agents.defaultAttemptMs),
      )
      .catch(() => {})
  }

  /** Stops passing (the driver closes). */
  stop(): void {
    clearTimeout(this.timer)
    this.timer = undefined
  }

  private ensure(ttlMs: number): Promise<void> {
    if (this.registered && ttlMs >= this.ttlMs) return this.registered
    this.ttlMs = Math.min(this.ttlMs, ttlMs)
    const attempt = this.register(this.ttlMs)
    this.registered = attempt
    attempt.catch(() => {
      if (this.registered === attempt) this.registered = undefined
    })
    return attempt
  }

  private schedule(): void {
    if (this.timer || this.holders === 0) return
    this.timer = setTimeout(
      () => {
        this.timer = undefined
        this.pass()
          .catch(() => {})
          .finally(() => this.schedule())
      },
      Math.max(100, this.ttlMs / 3),
    )
    this.timer.unref()
  }

  /** One pass for every instance; a 404 (the agent lost the owner) registers it again. */
  private async pass(): Promise<void> {
    if (this.passing) return
    this.passing = true
    const id = ttlCheckId(this.serviceId)
    const timeout = Math.min(this.ttlMs, this.agents.defaultAttemptMs)
    try {
      await this.agents.attempt(this.agent, (c, x) => c.agent.check.pass({id, note: NOTE, ...x}), timeout)
      this.passedAt = Date.now()
    } catch (error) {
      if (!(error instanceof ConsulError && forgotten(error))) throw error
      // the agent lost the owner (restarted without its data); the instances are gone with it, presence restores them
      this.registered = undefined
      await this.ensure(this.ttlMs)
    } finally {
      this.passing = false
    }
  }

  private async register(ttlMs: number): Promise<void> {
    const definition = {
      name: OWNER_SERVICE,
      id: this.serviceId,
      meta: {...ownerMeta(this.owner), [ROLE_KEY]: 'owner'},
      check: {
        name: 'svc owner heartbeat',
        checkid: ttlCheckId(this.serviceId),
        notes: 'passed by the svc process whose instances alias this service',
        ttl: ms(ttlMs),
        timeout: ms(ttlMs),
        // passing from the start: an alias check made before the first pass would read critical
        status: 'passing',
        deregistercriticalserviceafter: ms(MIN_DEREGISTER_AFTER_MS),
      },
    }
    await this.agents.attempt(
      this.agent,
      (c, x) => c.agent.service.register({...definition, ...x}),
      this.agents.defaultAttemptMs,
    )
    this.passedAt = Date.now()
  }
}
