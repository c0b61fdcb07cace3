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
 * other errors and the last retryable one are thrown as they are.
 */
export async function withPolicy<T>(policy: CallPolicy, operation: (attempt: number) => Promise<T>): Promise<T> {
  const {deadlineMs, retryable = isTransient, signal} = policy
  const deadline = deadlineMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + deadlineMs
  const timedOut = (): BackendError =>
    new BackendError(policy.backend, `${policy.what} took longer than ${deadlineMs} ms`, {
      hint: 'check that the servers answer, or raise the request timeout',
      transient: true,
    })
  for (let attempt = 0; ; attempt++) {
    const left = deadline - Date.now()
    if (left <= 0) throw timedOut()
    try {
      return await (Number.isFinite(left) ? within(operation(attempt), left, timedOut) : operation(attempt))
    } catch (error) {
      const delay = backoffDelay(policy.retry, attempt)
      const last = attempt + 1 >= policy.retry.attempts || Date.now() + delay >= deadline
      if (!retryable(error) || last || signal?.aborted) throw error
      await sleep(delay, signal)
      if (signal?.aborted) throw error
    }
  }
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
