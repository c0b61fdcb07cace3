import {BackendError, isTransient} from '../../errors.js'
import {within} from '../../timeout.js'

export interface RetryPolicy {
  attempts: number
  initialDelayMs: number
  maxDelayMs: number
}

/** Exponential backoff with full jitter. */
export function backoffDelay(policy: Pick<RetryPolicy, 'initialDelayMs' | 'maxDelayMs'>, attempt: number): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** attempt)
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2)
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms)
    function done(): void {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }

    signal?.addEventListener('abort', done, {once: true})
  })
}

/**
 * How often a registration refreshes its liveness: `refreshMs` when it is below the TTL (a period at or above the
 * TTL would let the registration expire between refreshes), else a third of the TTL, never below `floorMs`.
 */
export function refreshPeriod(ttlMs: number, refreshMs: number | undefined, floorMs: number): number {
  if (refreshMs !== undefined && refreshMs > 0 && refreshMs < ttlMs) return refreshMs
  return Math.max(floorMs, Math.floor(ttlMs / 3))
}

export interface CallPolicy {
  /** Names the backend in the timeout error. */
  backend: string
  /** What the call does, for the timeout error ("listing services"). */
  what: string
  /** Upper bound for the whole call, retries included; omitted: the caller bounds the call itself. */
  deadlineMs?: number
  retry: RetryPolicy
  signal?: AbortSignal
  /** Which errors are worth another attempt; default: transient BackendErrors. */
  retryable?: (error: unknown) => boolean
}

/**
 * Runs `operation` under one deadline, retrying the errors `retryable` accepts with capped jittered backoff;
 * other errors and the last retryable one are thrown as they are. The member loop below, on one member.
 */
export async function withPolicy<T>(policy: CallPolicy, operation: (attempt: number) => Promise<T>): Promise<T> {
  const {deadlineMs} = policy
  const timedOut = (): BackendError =>
    new BackendError(policy.backend, `${policy.what} took longer than ${deadlineMs} ms`, {
      hint: 'check that the servers answer, or raise the request timeout',
      transient: true,
    })
  let attempt = 0
  const only: MemberCallPolicy<string> = {
    deadlineMs: deadlineMs ?? Number.POSITIVE_INFINITY,
    attemptMs: Number.POSITIVE_INFINITY,
    // withMembers counts the retries after the first attempt
    retry: {...policy.retry, attempts: policy.retry.attempts - 1},
    ...(policy.signal ? {signal: policy.signal} : {}),
    ...(policy.retryable ? {retryable: policy.retryable} : {}),
    // whatever fails is an answer: there is no other member to move on to
    unreachable: () => false,
    noAnswer: timedOut,
  }
  const {value} = await withMembers(new MemberPool([policy.what]), only, (_, timeoutMs) => {
    const running = operation(attempt++)
    return Number.isFinite(timeoutMs) ? within(running, timeoutMs, timedOut) : running
  })
  return value
}

/**
 * The members of a cluster in the order to try them: the one that answered last first, then the others in the
 * order listed. A frozen first member thus costs one connect timeout once, not one on every call.
 */
export class MemberPool<M> {
  private readonly members: readonly M[]
  private preferred = 0

  constructor(members: readonly M[]) {
    if (members.length === 0) throw new Error('a member pool needs at least one member')
    this.members = members
  }

  get all(): readonly M[] {
    return this.members
  }

  /** The member asked first. */
  get current(): M {
    return this.members[this.preferred]!
  }

  order(): M[] {
    return [...this.members.slice(this.preferred), ...this.members.slice(0, this.preferred)]
  }

  answered(member: M): void {
    const index = this.members.indexOf(member)
    if (index !== -1) this.preferred = index
  }

  /**
   * `member` failed: when it is the one asked first, `to` (default: the next one) is from now on. False when
   * another call moved on already, or there is nowhere to go.
   */
  failed(member: M, to?: M): boolean {
    const index = this.members.indexOf(member)
    const next = to === undefined ? (index + 1) % this.members.length : this.members.indexOf(to)
    if (index !== this.preferred || next === -1 || next === index) return false
    this.preferred = next
    return true
  }
}

/** One call over the members of a cluster: its bounds, and the hooks through which a backend tells its errors apart. */
export interface MemberCallPolicy<M> {
  /** Upper bound for the whole call, fail-over and retries included. */
  deadlineMs: number
  /** Until some member has answered (an error is an answer too), the call gives up after this; default deadlineMs. */
  firstAnswerMs?: number
  /** Bound for one attempt on one member; once a member answered with a transient error, attempts use the time left. */
  attemptMs: number
  retry: RetryPolicy
  signal?: AbortSignal
  /** Which answered errors are worth another attempt on the same member; default: transient BackendErrors. */
  retryable?: (error: unknown) => boolean
  /** Reads only: an attempt without an answer after this is joined by one on the next member; the first answer wins. */
  hedgeMs?: number
  /** Whether the member did not answer (the call moves on to the next one) rather than answered with an error. */
  unreachable(error: unknown): boolean
  /** Makes a failed attempt's error more precise within `withinMs` (Consul: a leader probe after a timeout). */
  explain?(member: M, error: unknown, withinMs: number): Promise<unknown>
  /** A round in which no member answered, before any ever did: the error to throw at once when waiting cannot help. */
  hopeless?(failures: ReadonlyMap<M, unknown>, elapsedMs: number): Error | undefined
  /** No member answered within firstAnswerMs. */
  noAnswer(elapsedMs: number, last: unknown): Error
  /** Calls moved from `from` to `to`: after `error`, or (undefined) because `to` answered first. */
  movedOn?(from: M, to: M, error: unknown): void
}

/** One attempt on one member, bounded by `timeoutMs` and cancelled through `signal`. */
export type MemberAttempt<M, T> = (member: M, timeoutMs: number, signal: AbortSignal | undefined) => Promise<T>

type Outcome<M, T> = {member: M; value: T} | {failures: Array<[M, unknown]>}

/**
 * Runs `attempt` on the pool's members under one deadline: a member that does not answer makes the next one current
 * (after a round in which none answered, a jittered pause); a transient error that a member answered is retried
 * with backoff on the same member, any other error is thrown at once.
 */
export async function withMembers<M, T>(
  pool: MemberPool<M>,
  policy: MemberCallPolicy<M>,
  attempt: MemberAttempt<M, T>,
): Promise<{member: M; value: T}> {
  const call = new MemberCall(pool, policy)
  const run = leg(policy, attempt, call)
  for (;;) {
    const hedged = policy.hedgeMs !== undefined && call.answer === undefined && pool.all.length > 1
    const outcome = hedged ? await race(pool, policy, run) : await single(pool.current, policy.signal, run)
    if ('value' in outcome) return outcome
    await call.failed(outcome.failures)
  }
}

/** What one call has seen so far, and what it makes of each failure. */
class MemberCall<M> {
  readonly started = Date.now()
  readonly deadline: number
  /** Until some member answers, the call gives up after firstAnswerMs. */
  readonly firstAnswerBy: number
  answer?: {error: unknown}
  /** The members that did not answer in this round. */
  private readonly round = new Map<M, unknown>()
  private unreachable: unknown
  private rounds = 0
  private retries = 0

  constructor(
    private readonly pool: MemberPool<M>,
    private readonly policy: MemberCallPolicy<M>,
  ) {
    this.deadline = this.started + policy.deadlineMs
    this.firstAnswerBy = this.started + Math.min(policy.firstAnswerMs ?? policy.deadlineMs, policy.deadlineMs)
  }

  /** Time left until the bound that applies now. */
  left(): number {
    return (this.answer ? this.deadline : this.firstAnswerBy) - Date.now()
  }

  /** The bound of the next attempt: a member that answered but was slow (no leader yet) may use the time left. */
  attemptMs(): number {
    const left = Math.max(1, this.left())
    return this.answer && this.retryable(this.answer.error) ? left : Math.min(this.policy.attemptMs, left)
  }

  /** Takes in one attempt's (or one race's) failures in order: throws when the call is over, else pauses. */
  async failed(failures: Array<[M, unknown]>): Promise<void> {
    const {policy} = this
    let pause = 0
    for (const [member, error] of failures) {
      if (policy.signal?.aborted) throw error
      pause = Math.max(pause, policy.unreachable(error) ? this.noAnswer(member, error) : this.answered(error))
    }

    if (pause > 0) await sleep(pause, policy.signal)
    // read once: a deadline passed between two readings showed one member's error
    const now = Date.now()
    const last = this.answer ? this.answer.error : this.unreachable
    if (policy.signal?.aborted) throw last
    if (!this.answer && now >= this.firstAnswerBy) throw policy.noAnswer(now - this.started, this.unreachable)
    if (now >= this.deadline) throw last
  }

  /** A member answered with an error: one worth retrying is, after a pause that ends before the deadline. */
  private answered(error: unknown): number {
    this.answer = {error}
    const delay = backoffDelay(this.policy.retry, this.retries)
    const last = this.retries >= this.policy.retry.attempts || Date.now() + delay >= this.deadline
    if (!this.retryable(error) || last) throw error
    this.retries++
    return delay
  }

  private retryable(error: unknown): boolean {
    return (this.policy.retryable ?? isTransient)(error)
  }

  /** One member did not answer: the next is current; after a round of them, the pause before the next round. */
  private noAnswer(member: M, error: unknown): number {
    const {pool, policy, round} = this
    this.unreachable = error
    round.set(member, error)
    if (pool.failed(member)) policy.movedOn?.(member, pool.current, error)
    if (round.size < pool.all.length) return 0
    const hopeless = this.answer ? undefined : policy.hopeless?.(round, Date.now() - this.started)
    if (hopeless) throw hopeless
    round.clear()
    return Math.min(backoffDelay(policy.retry, this.rounds++), this.left())
  }
}

/** One attempt, bounded by the call, whose failure the backend explains in the time left. */
function leg<M, T>(
  policy: MemberCallPolicy<M>,
  attempt: MemberAttempt<M, T>,
  call: MemberCall<M>,
): (member: M, signal: AbortSignal | undefined) => Promise<T> {
  return async (member, signal) => {
    try {
      return await attempt(member, call.attemptMs(), signal)
    } catch (error) {
      if (signal?.aborted || !policy.explain) throw error
      throw await policy.explain(member, error, call.left())
    }
  }
}

async function single<M, T>(
  member: M,
  signal: AbortSignal | undefined,
  run: (member: M, signal: AbortSignal | undefined) => Promise<T>,
): Promise<Outcome<M, T>> {
  try {
    return {member, value: await run(member, signal)}
  } catch (error) {
    return {failures: [[member, error]]}
  }
}

/**
 * The current member first; the next one joins when the last asked has not answered within `hedgeMs`, or at once
 * when one failed. The first answer wins and its member becomes current; an error that a member answered and that
 * waiting does not change ends the race too. Otherwise, once all failed: their errors, in the pool's order.
 */
function race<M, T>(
  pool: MemberPool<M>,
  policy: MemberCallPolicy<M>,
  run: (member: M, signal: AbortSignal | undefined) => Promise<T>,
): Promise<Outcome<M, T>> {
  const order = pool.order()
  const first = order[0]!
  const stop = new AbortController()
  const abort = (): void => stop.abort()
  policy.signal?.addEventListener('abort', abort, {once: true})
  const failures = new Map<M, unknown>()
  let sent = 0
  let timer: NodeJS.Timeout | undefined
  return new Promise<Outcome<M, T>>((resolve) => {
    const finish = (outcome: Outcome<M, T>): void => {
      clearTimeout(timer)
      policy.signal?.removeEventListener('abort', abort)
      stop.abort()
      resolve(outcome)
    }

    const send = (): void => {
      clearTimeout(timer)
      const member = order[sent++]!
      if (sent < order.length) timer = setTimeout(send, policy.hedgeMs)
      run(member, stop.signal).then(
        (value) => {
          if (stop.signal.aborted) return
          if (member !== first && pool.failed(first, member)) policy.movedOn?.(first, member, failures.get(first))
          finish({member, value})
        },
        (error: unknown) => {
          if (stop.signal.aborted && !policy.signal?.aborted) return
          failures.set(member, error)
          const final =
            policy.signal?.aborted || (!policy.unreachable(error) && !(policy.retryable ?? isTransient)(error))
          if (final || failures.size === order.length) finish(inOrder(order, failures))
          // a member that does not answer, or answers that it cannot yet, is not waited for
          else if (sent < order.length) send()
        },
      )
    }

    send()
  })
}

function inOrder<M, T>(order: readonly M[], failures: ReadonlyMap<M, unknown>): Outcome<M, T> {
  return {failures: order.filter((m) => failures.has(m)).map((m): [M, unknown] => [m, failures.get(m)])}
}
