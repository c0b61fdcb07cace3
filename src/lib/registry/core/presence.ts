import {mapBounded} from '../../bounded.js'
import {errorMessage} from '../../errors.js'
import type {Binding, Driver, ReadResult, RecordKey} from './driver.js'
import {instanceKey} from './diff.js'

/** Reads made at once where a driver has no readMany. */
const READ_CONCURRENCY = 16
/** Binding refreshes in flight at once (drivers coalesce them onto one primitive where they can). */
const REFRESH_CONCURRENCY = 256

/** What one check found for one registration. */
export type CheckResult =
  | {kind: 'missing-liveness'}
  | {kind: 'read'; found: ReadResult | undefined}
  /** `quiet`: the scheduler logged one line for every registration this failure hit. */
  | {kind: 'failed'; error: unknown; quiet?: boolean}

type Failed = Extract<CheckResult, {kind: 'failed'}>

/** What the scheduler needs of a registration (core/registration.ts). */
export interface Checked {
  readonly key: RecordKey
  readonly currentBinding: Binding
  readonly refreshMs: number
  /** When the next check is due (ms since the epoch). */
  readonly dueAt: number
  /** Starts a check: false when the handle is closed and takes no part. */
  begin(): boolean
  /** Hands the registration its result; resolves when it has acted (re-created, reported). */
  settle(result: CheckResult): Promise<void>
}

/**
 * One scheduler per registry for all its registrations: at each refresh period it refreshes the due bindings and
 * checks their presence with one `readMany` (or bounded reads), then hands each registration its result. A driver
 * event checks every registration at once, in one pass. One timer, whatever the number of registrations.
 */
export class PresenceScheduler {
  private readonly members = new Set<Checked>()
  private timer?: NodeJS.Timeout
  private timerAt = Infinity
  private running?: Promise<void>
  private again = false
  private everyone = false
  private readonly unsubscribe: () => void

  constructor(
    private readonly driver: Driver,
    private readonly log: (message: string) => void,
  ) {
    this.unsubscribe = driver.onEvent(() => this.checkAll())
  }

  add(member: Checked): void {
    this.members.add(member)
    this.reschedule(member.dueAt)
  }

  delete(member: Checked): void {
    this.members.delete(member)
    if (this.members.size === 0) this.stopTimer()
  }

  /** Tells the scheduler a member's due time moved (after a check or a failure). */
  moved(member: Checked): void {
    if (this.members.has(member)) this.reschedule(member.dueAt)
  }

  /** Checks every registration now (a session, lease, connection or member event). */
  checkAll(): Promise<void> {
    this.everyone = true
    return this.run()
  }

  close(): void {
    this.unsubscribe()
    this.stopTimer()
    this.members.clear()
  }

  private stopTimer(): void {
    clearTimeout(this.timer)
    this.timer = undefined
    this.timerAt = Infinity
  }

  private reschedule(at: number): void {
    if (at >= this.timerAt) return
    clearTimeout(this.timer)
    this.timerAt = at
    this.timer = setTimeout(
      () => {
        this.timer = undefined
        this.timerAt = Infinity
        this.run()
      },
      Math.max(0, at - Date.now()),
    )
  }

  /** One pass at a time; a pass asked for while one runs runs once more after it. */
  private run(): Promise<void> {
    if (this.running) {
      this.again = true
      return this.running
    }

    this.running = this.pass()
      .catch((error: unknown) => this.log(`registration check failed: ${errorMessage(error)}`))
      .finally(() => {
        this.running = undefined
        if (this.again) {
          this.again = false
          this.run()
        } else {
          this.rescheduleAll()
        }
      })
    return this.running
  }

  private rescheduleAll(): void {
    let next = Infinity
    for (const m of this.members) next = Math.min(next, m.dueAt)
    if (next !== Infinity) this.reschedule(next)
  }

  /** The members due now; those due within half their period come along, so registrations fall into one batch. */
  private due(): Checked[] {
    const now = Date.now()
    const all = this.everyone
    this.everyone = false
    return [...this.members].filter((m) => all || m.dueAt - now <= m.refreshMs / 2).filter((m) => m.begin())
  }

  private async pass(): Promise<void> {
    const due = this.due()
    if (due.length === 0) return
    const results = new Map<Checked, CheckResult>()
    const live: Checked[] = []
    await mapBounded(due, REFRESH_CONCURRENCY, async (m) => {
      try {
        if ((await m.currentBinding.refresh()) === 'missing') results.set(m, {kind: 'missing-liveness'})
        else live.push(m)
      } catch (error) {
        results.set(m, {kind: 'failed', error})
      }
    })
    await this.read(live, results)
    const failed = [...results.values()].filter((r): r is Failed => r.kind === 'failed')
    const first = failed[0]
    if (first && failed.length > 1) {
      for (const r of failed) r.quiet = true
      this.log(`registration check of ${failed.length} instances failed: ${errorMessage(first.error)}; retrying`)
    }

    await Promise.all(due.map((m) => m.settle(results.get(m) ?? {kind: 'failed', error: new Error('not checked')})))
  }

  /** Presence of the live members: one readMany, or reads with bounded concurrency. */
  private async read(members: Checked[], results: Map<Checked, CheckResult>): Promise<void> {
    if (members.length === 0) return
    const {driver} = this
    if (driver.readMany) {
      try {
        const found = await driver.readMany(members.map((m) => m.key))
        for (const m of members) results.set(m, {kind: 'read', found: found.get(instanceKey(m.key))})
      } catch (error) {
        for (const m of members) results.set(m, {kind: 'failed', error})
      }

      return
    }

    await mapBounded(members, READ_CONCURRENCY, async (m) => {
      try {
        results.set(m, {kind: 'read', found: await driver.read(m.key.service, m.key.id)})
      } catch (error) {
        results.set(m, {kind: 'failed', error})
      }
    })
  }
}
