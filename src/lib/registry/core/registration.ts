import {formatDuration} from '../../duration.js'
import {errorMessage, UserError} from '../../errors.js'
import type {
  Health,
  InstanceChanges,
  RegisterOptions,
  RegistrationHandle,
  RegistrationState,
  ServiceInstance,
} from '../types.js'
import {applyChanges} from '../validate.js'
import {type Binding, type Driver, isSkipped, type OwnedRecord, type ReadResult} from './driver.js'
import {describeOwner, ownerAlive, sameOwner} from './owner.js'
import {backoffDelay} from './policy.js'

/** What every method of a closed handle throws. */
export class RegistrationClosedError extends UserError {
  override name = 'RegistrationClosedError'

  constructor(instance: ServiceInstance) {
    super(
      `the registration of ${instance.service} ${instance.id} is closed`,
      'register the instance again to change it',
      1,
    )
  }
}

/** What a presence check found at the record's key. */
type Presence = {kind: 'ours'} | {kind: 'missing'; why: string} | {kind: 'held'; why: string}

export interface LifecycleSettings {
  driver: Driver
  record: OwnedRecord
  binding: Binding
  onStateChange?: RegisterOptions['onStateChange']
  log: (message: string) => void
  /** Called once when the handle closes, so the registry forgets it. */
  onClosed: () => void
}

/** The first retry while the backend is unreachable; later ones back off up to the refresh period. */
const FIRST_RETRY_MS = 200

/**
 * The one registration lifecycle (DESIGN.md, "Registration lifecycle"), the same over every driver: at every
 * refresh and on every driver event it re-asserts liveness, checks that the record is present and ours, and
 * re-creates it when it is missing or its owner is gone; each loss episode reports `lost` once and `restored` once.
 */
export class Registration implements RegistrationHandle {
  private readonly driver: Driver
  private readonly settings: LifecycleSettings
  private record: OwnedRecord
  private binding: Binding
  private closedError?: RegistrationClosedError
  private lost = false
  /** When liveness was last re-asserted: a longer gap than the TTL is a loss whatever the backend says now. */
  private aliveAt = Date.now()
  private failures = 0
  private timer?: NodeJS.Timeout
  private checking?: Promise<void>
  private again = false
  private readonly unsubscribe: () => void
  /** Serializes writes: a presence check, setHealth, update and close never interleave. */
  private queue: Promise<unknown> = Promise.resolve()

  constructor(settings: LifecycleSettings) {
    this.settings = settings
    this.driver = settings.driver
    this.record = settings.record
    this.binding = settings.binding
    this.unsubscribe = this.driver.onEvent(() => this.check())
    this.schedule(this.record.refreshMs)
  }

  get instance(): ServiceInstance {
    return this.record.instance
  }

  async setHealth(health: Health, output?: string): Promise<void> {
    this.assertOpen()
    await this.serial(async () => {
      this.assertOpen()
      const next = {...this.record, instance: {...this.record.instance, health}}
      if (this.driver.setHealth) await this.driver.setHealth(next, this.binding, health, output)
      else if (health !== this.record.instance.health) await this.driver.rewrite(next, this.binding)
      this.record = next
    })
  }

  async update(changes: InstanceChanges): Promise<void> {
    this.assertOpen()
    const instance = applyChanges(this.record.instance, changes)
    await this.serial(async () => {
      this.assertOpen()
      const next = {...this.record, instance}
      await this.driver.rewrite(next, this.binding)
      this.record = next
    })
  }

  async close(opts: {deregister?: boolean} = {}): Promise<void> {
    this.assertOpen()
    this.closedError = new RegistrationClosedError(this.record.instance)
    clearTimeout(this.timer)
    this.unsubscribe()
    this.settings.onClosed()
    await this.serial(async () => {
      try {
        const {service, id} = this.record.instance
        // never remove what another owner has taken over meanwhile
        if (opts.deregister !== false && this.judge(await this.driver.read(service, id)).kind === 'ours') {
          await this.driver.remove(service, id)
        }
      } finally {
        await this.binding.release()
      }
    })
  }

  /** Checks presence now; a check asked for while one runs runs once more after it. */
  private check(): Promise<void> {
    if (this.closedError) return Promise.resolve()
    if (this.checking) {
      this.again = true
      return this.checking
    }

    this.checking = this.serial(() => this.presence())
      // only a throwing onStateChange gets here: presence() handles the backend's errors itself
      .catch((error: unknown) => this.settings.log(`registration check failed: ${errorMessage(error)}`))
      .finally(() => {
        this.checking = undefined
        if (this.again) {
          this.again = false
          this.check()
        }
      })
    return this.checking
  }

  private async presence(): Promise<void> {
    if (this.closedError) return
    clearTimeout(this.timer)
    const {service, id} = this.record.instance
    const gap = Date.now() - this.aliveAt
    if (gap > this.record.ttlMs) {
      // a pause longer than the TTL (SIGSTOP, a frozen VM, a suspended laptop): clients saw the instance gone
      const ttl = formatDuration(this.record.ttlMs)
      this.report('lost', `no refresh for ${formatDuration(gap)}, longer than the TTL of ${ttl}`)
    }

    try {
      const liveness = await this.binding.refresh()
      const found: Presence =
        liveness === 'missing'
          ? {kind: 'missing', why: 'its liveness (session, lease, check or heartbeat) expired'}
          : this.judge(await this.driver.read(service, id))
      if (this.closedError) return
      if (found.kind === 'held') {
        this.report('lost', found.why)
      } else if (found.kind === 'missing') {
        this.report('lost', found.why)
        await this.recreate()
        this.report('restored', `re-created ${service} ${id} on ${this.driver.description}`)
      } else {
        this.report('restored', `${service} ${id} is present on ${this.driver.description}`)
      }

      this.failures = 0
      this.aliveAt = Date.now()
      this.schedule(this.record.refreshMs)
    } catch (error) {
      if (this.closedError) return
      // a check that could not be made is no loss: the record outlives it until its TTL, when the gap rule above
      // reports it lost; a leader election that fails one read no longer makes a second loss episode
      if (this.failures === 0)
        this.settings.log(`registration check of ${service} ${id} failed: ${errorMessage(error)}; retrying`)
      const delay = backoffDelay({initialDelayMs: FIRST_RETRY_MS, maxDelayMs: this.record.refreshMs}, this.failures)
      this.failures++
      this.schedule(delay)
    }
  }

  private judge(result: ReadResult | undefined): Presence {
    if (result === undefined) return {kind: 'missing', why: 'the instance was removed from the registry'}
    if (isSkipped(result)) return {kind: 'held', why: `its key holds a record svc cannot read (${result.reason})`}
    const {owner} = result
    if (owner === undefined) return {kind: 'held', why: 'another tool wrote a record under its id'}
    if (sameOwner(owner, this.record.owner)) return {kind: 'ours'}
    if (!ownerAlive(owner)) return {kind: 'missing', why: `its record names ${describeOwner(owner)}, which has exited`}
    return {kind: 'held', why: `${describeOwner(owner)} registered the same id`}
  }

  private async recreate(): Promise<void> {
    const previous = this.binding
    this.binding = await this.driver.write(this.record)
    await previous.release().catch(() => {})
  }

  /** One `lost` and one `restored` per loss episode, each as one line. */
  private report(state: Extract<RegistrationState, 'lost' | 'restored'>, detail: string): void {
    if ((state === 'lost') === this.lost) return
    this.lost = state === 'lost'
    const {onStateChange, log} = this.settings
    if (onStateChange) onStateChange(state, detail)
    else log(`registration ${state}: ${detail}`)
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer)
    if (this.closedError) return
    this.timer = setTimeout(() => this.check(), ms)
  }

  private serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task, task)
    this.queue = run.catch(() => {})
    return run
  }

  private assertOpen(): void {
    if (this.closedError) throw this.closedError
  }
}
