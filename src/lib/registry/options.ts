/** Options every backend takes; one object with defaults, in the style of etcd3's and consul's clients. */
export interface BackendOptions {
  /** How long the first contact with the backend may take before it is reported unreachable. */
  connectTimeoutMs: number
  /** Upper bound for one request, fail-over to other members included. */
  requestTimeoutMs: number
  /** Retries for transient errors inside one operation. */
  retry: RetryPolicy
  /** Diagnostics (fail-over, session loss); they go to stderr in the CLI. */
  log: (message: string) => void
}

export interface RetryPolicy {
  attempts: number
  initialDelayMs: number
  maxDelayMs: number
}

export const DEFAULT_BACKEND_OPTIONS: BackendOptions = {
  connectTimeoutMs: 5000,
  requestTimeoutMs: 8000,
  retry: {attempts: 3, initialDelayMs: 100, maxDelayMs: 2000},
  log() {},
}

export function withDefaults(options: Partial<BackendOptions> = {}): BackendOptions {
  return {...DEFAULT_BACKEND_OPTIONS, ...options, retry: {...DEFAULT_BACKEND_OPTIONS.retry, ...options.retry}}
}

/** Exponential backoff with full jitter. */
export function backoffDelay(policy: RetryPolicy, attempt: number): number {
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
