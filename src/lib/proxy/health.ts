/** Passive health: how failures eject an instance and how retries are rationed. */
export interface PassiveHealthOptions {
  /** Consecutive connection failures or 5xx responses that eject an instance. */
  consecutiveFailures: number
  /** The first ejection's length; each further ejection doubles it, up to `maxEjectionMs`. */
  baseEjectionMs: number
  maxEjectionMs: number
  /** At most this share of a service's instances is ejected at once, and never the last one. */
  maxEjectionPercent: number
}

export const DEFAULT_PASSIVE_HEALTH: PassiveHealthOptions = {
  consecutiveFailures: 5,
  baseEjectionMs: 1000,
  maxEjectionMs: 30_000,
  maxEjectionPercent: 50,
}

/** The passive-health state one upstream carries. */
export interface HealthState {
  consecutiveFailures: number
  /** Ejections in a row; it drops back to 0 after a quiet spell without one. */
  ejections: number
  /** 0 while in rotation, else the time the ejection ends. */
  ejectedUntil: number
  lastEjectionAt: number
}

export function freshHealth(): HealthState {
  return {consecutiveFailures: 0, ejections: 0, ejectedUntil: 0, lastEjectionAt: 0}
}

/** Ejections in a row so far, or 0 after a quiet spell (twice the longest ejection) without one. */
function streak(state: HealthState, now: number, opts: PassiveHealthOptions): number {
  return state.lastEjectionAt !== 0 && now - state.lastEjectionAt <= 2 * opts.maxEjectionMs ? state.ejections : 0
}

/** The length of the next ejection of `state` at `now`, in ms: base, 2x, 4x, ... capped at `maxEjectionMs`. */
export function nextEjectionMs(state: HealthState, now: number, opts: PassiveHealthOptions): number {
  return Math.min(opts.maxEjectionMs, opts.baseEjectionMs * 2 ** Math.min(streak(state, now, opts), 20))
}

/** Whether one more of `total` instances may be ejected while `ejected` already are. */
export function mayEject(ejected: number, total: number, opts: PassiveHealthOptions): boolean {
  if (total - ejected <= 1) return false
  return ejected + 1 <= Math.floor((total * opts.maxEjectionPercent) / 100)
}

/**
 * Records one outcome; returns the ejection length in ms when this failure ejects the instance, else 0.
 * `mayEjectNow` says whether the service can spare it.
 */
export function recordOutcome(
  state: HealthState,
  failed: boolean,
  now: number,
  mayEjectNow: boolean,
  opts: PassiveHealthOptions,
): number {
  if (!failed) {
    state.consecutiveFailures = 0
    return 0
  }

  state.consecutiveFailures++
  if (state.ejectedUntil !== 0 || state.consecutiveFailures < opts.consecutiveFailures || !mayEjectNow) return 0
  const ms = nextEjectionMs(state, now, opts)
  state.ejections = streak(state, now, opts) + 1
  state.lastEjectionAt = now
  state.ejectedUntil = now + ms
  state.consecutiveFailures = 0
  return ms
}

export interface RetryBudgetOptions {
  /** Retries allowed as a share of the requests of the last second. */
  ratio: number
  /** Retries always allowed per second, whatever the traffic. */
  minPerSecond: number
}

export const DEFAULT_RETRY_BUDGET: RetryBudgetOptions = {ratio: 0.2, minPerSecond: 10}

/**
 * Rations retries so a failing fleet is not hit twice as hard: at most `ratio` of the requests of the previous
 * second plus `minPerSecond`. `tick()` turns the window over, once a second, from a timer, not the request path.
 */
export class RetryBudget {
  private requests = 0
  private previousRequests = 0
  private retries = 0

  constructor(private readonly opts: RetryBudgetOptions = DEFAULT_RETRY_BUDGET) {}

  request(): void {
    this.requests++
  }

  /** Takes one retry from the budget; false when it is spent. */
  tryRetry(): boolean {
    const allowed = this.opts.minPerSecond + this.opts.ratio * Math.max(this.requests, this.previousRequests)
    if (this.retries >= allowed) return false
    this.retries++
    return true
  }

  tick(): void {
    this.previousRequests = this.requests
    this.requests = 0
    this.retries = 0
  }
}
