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
  /** Upper bound for the whole call, retries included. */
  deadlineMs: number
  retry: RetryPolicy
  signal?: AbortSignal
}

/**
 * Runs `operation` under one deadline, retrying transient BackendErrors with capped jittered backoff; permanent
 * errors and the last transient one are thrown as they are.
 */
export async function withPolicy<T>(policy: CallPolicy, operation: (attempt: number) => Promise<T>): Promise<T> {
  const deadline = Date.now() + policy.deadlineMs
  const timedOut = (): BackendError =>
    new BackendError(policy.backend, `${policy.what} took longer than ${policy.deadlineMs} ms`, {
      hint: 'check that the servers answer, or raise the request timeout',
      transient: true,
    })
  for (let attempt = 0; ; attempt++) {
    const left = deadline - Date.now()
    if (left <= 0) throw timedOut()
    try {
      return await within(operation(attempt), left, timedOut)
    } catch (error) {
      const delay = backoffDelay(policy.retry, attempt)
      const last = attempt + 1 >= policy.retry.attempts || Date.now() + delay >= deadline
      if (!isTransient(error) || last || policy.signal?.aborted) throw error
      await sleep(delay, policy.signal)
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

  order(): M[] {
    return [...this.members.slice(this.preferred), ...this.members.slice(0, this.preferred)]
  }

  answered(member: M): void {
    const index = this.members.indexOf(member)
    if (index !== -1) this.preferred = index
  }

  /**
   * Calls `operation` on each member in order until one succeeds; a transient error (or one `failOver` accepts)
   * moves on to the next member, any other is thrown at once. Throws the last error when every member failed.
   */
  async first<T>(
    operation: (member: M) => Promise<T>,
    failOver: (error: unknown) => boolean = isTransient,
  ): Promise<T> {
    let lastError: unknown
    for (const member of this.order()) {
      try {
        const result = await operation(member)
        this.answered(member)
        return result
      } catch (error) {
        if (!failOver(error)) throw error
        lastError = error
      }
    }

    throw lastError
  }
}
