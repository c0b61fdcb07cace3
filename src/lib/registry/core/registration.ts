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
import {type Binding, type Driver, isSkipped, type OwnedRecord, type ReadResult, type RecordKey} from './driver.js'
import {describeOwner, ownerAlive, sameOwner} from './owner.js'
import {backoffDelay} from './policy.js'
import type {Checked, CheckResult, PresenceScheduler} from './presence.js'

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
  /** The registry's one scheduler, which checks every registration of the process in one pass. */
  scheduler: PresenceScheduler
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
export class Registration implements Checked, RegistrationHandle {
  private readonly driver: Driver
  private readonly settings: LifecycleSettings
  private record: OwnedRecord
  private binding: Binding
  private closedError?: RegistrationClosedError
  private lost = false
  /** When liveness was last re-asserted: a longer gap than the TTL is a loss whatever the backend says now. */
  private aliveAt = Date.now()
  private failures = 0
  private due: number
  private readonly scheduler: PresenceScheduler
  /** Serializes writes: a presence check, setHealth, update and close never interleave. */
  private queue: Promise<unknown> = Promise.resolve()

  constructor(settings: LifecycleSettings) {
    this.settings = settings
    this.driver = settings.driver
    this.record = settings.record
    this.binding = settings.binding
    this.scheduler = settings.scheduler
    this.due = Date.now() + this.record.refreshMs
    this.scheduler.add(this)
  }

  get instance(): ServiceInstance {
    return this.record.instance
  }

  get key(): RecordKey {
    return this.record.instance
  }

  get refreshMs(): number {
    return this.record.refreshMs
  }

  get dueAt(): number {
    return this.due
  }

  get currentBinding(): Binding {
    return this.binding
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
    this.scheduler.delete(this)
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

  /** The start of a check: a pause longer than the TTL is a loss whatever the backend says now. */
  begin(): boolean {
    if (this.closedError) return false
    const gap = Date.now() - this.aliveAt
    if (gap > this.record.ttlMs) {
      // a pause longer than the TTL (SIGSTOP, a frozen VM, a suspended laptop): clients saw the instance gone
      const ttl = formatDuration(this.record.ttlMs)
      this.report('lost', `no refresh for ${formatDuration(gap)}, longer than the TTL of ${ttl}`)
    }

    return true
  }

  /** Acts on what the scheduler's pass found: re-creates a missing record, reports each episode once. */
  settle(result: CheckResult): Promise<void> {
    return this.serial(() => this.act(result)).catch((error: unknown) =>
      // only a throwing onStateChange gets here: act() handles the backend's errors itself
      this.settings.log(`registration check failed: ${errorMessage(error)}`),
    )
  }

  private async act(result: CheckResult): Promise<void> {
    if (this.closedError) return
    const {service, id} = this.record.instance
    try {
      if (result.kind === 'failed') throw result.error
      const found: Presence =
        result.kind === 'missing-liveness'
          ? {kind: 'missing', why: 'its liveness (session, lease, check or heartbeat) expired'}
          : this.judge(result.found)
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
      this.next(this.record.refreshMs)
    } catch (error) {
      if (this.closedError) return
      // a check that could not be made is no loss: the record outlives it until its TTL, when the gap rule above
      // reports it lost; a leader election that fails one read no longer makes a second loss episode
      const quiet = result.kind === 'failed' && result.quiet === true
      if (this.failures === 0 && !quiet)
        this.settings.log(`registration check of ${service} ${id} failed: ${errorMessage(error)}; retrying`)
      const delay = backoffDelay({initialDelayMs: FIRST_RETRY_MS, maxDelayMs: this.record.refreshMs}, this.failures)
      this.failures++
      this.next(delay)
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

  private next(ms: number): void {
    this.due = Date.now() + ms
    this.scheduler.moved(this)
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
