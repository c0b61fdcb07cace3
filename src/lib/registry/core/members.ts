import {isTransient} from '../../errors.js'
import {backoffDelay, type MemberPool, type RetryPolicy, sleep} from './policy.js'

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
    return this.answer && isTransient(this.answer.error) ? left : Math.min(this.policy.attemptMs, left)
  }

  /** Takes in one attempt's (or one race's) failures in order: throws when the call is over, else pauses. */
  async failed(failures: Array<[M, unknown]>): Promise<void> {
    const {policy} = this
    let pause = 0
    for (const [member, error] of failures) {
      if (policy.signal?.aborted) throw error
      if (policy.unreachable(error)) {
        pause = Math.max(pause, this.noAnswer(member, error))
      } else {
        this.answer = {error}
        if (!isTransient(error) || this.retries >= policy.retry.attempts) throw error
        pause = Math.max(pause, Math.min(backoffDelay(policy.retry, this.retries++), this.deadline - Date.now()))
      }
    }

    if (pause > 0) await sleep(pause, policy.signal)
    // read once: a deadline passed between two readings showed one member's error
    const now = Date.now()
    if (!this.answer && now >= this.firstAnswerBy) throw policy.noAnswer(now - this.started, this.unreachable)
    if (now >= this.deadline) throw this.answer ? this.answer.error : this.unreachable
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
          const final = policy.signal?.aborted || (!policy.unreachable(error) && !isTransient(error))
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
