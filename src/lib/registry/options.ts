import type {RetryPolicy} from './core/policy.js'

export {backoffDelay, refreshPeriod, type RetryPolicy, sleep} from './core/policy.js'

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

const DEFAULT_BACKEND_OPTIONS: BackendOptions = {
  connectTimeoutMs: 5000,
  requestTimeoutMs: 8000,
  retry: {attempts: 3, initialDelayMs: 100, maxDelayMs: 2000},
  log() {},
}

export function withDefaults(options: Partial<BackendOptions> = {}): BackendOptions {
  return {...DEFAULT_BACKEND_OPTIONS, ...options, retry: {...DEFAULT_BACKEND_OPTIONS.retry, ...options.retry}}
}
