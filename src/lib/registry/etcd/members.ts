import {isRecoverableError} from 'etcd3'

import {MemberPool} from '../core/policy.js'
import {MemberSkippedError} from './errors.js'
import {type EarlyHandshakes, type Handshake, handshake, type HandshakeOutcome} from './handshake.js'
import type {Pem} from './security.js'

export type {HandshakeOutcome} from './handshake.js'

const BREAKER_INITIAL_MS = 1000
const BREAKER_MAX_MS = 10_000
/** Early handshakes stand for the first race when it starts this soon after them (a one-shot command's). */
const EARLY_FRESH_MS = 1000

/** A member's recent failures; it is skipped while open, unless every member is: then calls go through as probes. */
class MemberBreaker {
  private failures = 0
  private openUntil = 0

  succeeded(): void {
    this.failures = 0
    this.openUntil = 0
  }

  failed(): void {
    this.failures++
    this.openUntil = Date.now() + Math.min(BREAKER_MAX_MS, BREAKER_INITIAL_MS * 2 ** (this.failures - 1))
  }

  isOpen(now: number): boolean {
    return now < this.openUntil
  }
}

/**
 * The members of one cluster and the one that serves the calls: the first to complete an HTTP/2 handshake (a
 * frozen member accepts TCP connections but never answers, so only a handshake tells it apart), kept until a call
 * through it fails. The others are skipped meanwhile, so no call waits on a member that does not answer.
 */
export class EtcdMembers {
  private readonly breakers = new Map<string, MemberBreaker>()
  /** The member that answered last first: the order of the next handshakes. */
  private readonly memory: MemberPool<string>
  private chosen = false
  private choosing?: Promise<HandshakeOutcome[]>
  private readonly listeners = new Set<(detail: string) => void>()

  constructor(
    readonly urls: readonly string[],
    private readonly pem: () => Pem | undefined,
    private readonly handshakeMs: number,
    /** The handshakes openRegistry started while the client library loaded, until the first race uses them. */
    private early?: EarlyHandshakes,
  ) {
    for (const url of urls) this.breakers.set(url, new MemberBreaker())
    this.memory = new MemberPool(urls)
  }

  /** Drops the early handshakes if no race used them (the registry closes). */
  close(): void {
    this.early?.cancel()
    this.early = undefined
  }

  /** The member that serves the calls, once one has answered. */
  get current(): string | undefined {
    return this.chosen ? this.memory.order()[0] : undefined
  }

  /** Calls `listener` when calls move from one member to another. */
  onChange(listener: (detail: string) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /**
   * Chooses the member to use when none is chosen: every member is asked at once and the first to answer wins.
   * Resolves to every member's outcome when none answered (the caller tells refused from not found with them).
   */
  async choose(): Promise<HandshakeOutcome[] | undefined> {
    if (this.current !== undefined) return undefined
    this.choosing ??= this.race().finally(() => {
      this.choosing = undefined
    })
    const outcomes = await this.choosing
    return this.current === undefined ? outcomes : undefined
  }

  /** Whether a call may go to `url` now: the chosen member only, others when it is failing or none is chosen. */
  admits(url: string): boolean {
    const now = Date.now()
    const preferred = this.current
    if (preferred !== undefined && preferred !== url && !this.breakerOf(preferred).isOpen(now)) return false
    if (!this.breakerOf(url).isOpen(now)) return true
    return [...this.breakers.values()].every((b) => b.isOpen(now))
  }

  succeeded(url: string): void {
    this.breakerOf(url).succeeded()
    if (this.current === undefined) this.use(url, 'answered')
  }

  failed(url: string): void {
    this.breakerOf(url).failed()
    if (this.current !== url) return
    this.chosen = false
    for (const listener of this.listeners) listener(`etcd member ${hostOf(url)} stopped answering`)
    // the next call waits for whichever member answers first, instead of timing out on one after another
    this.choose().catch(() => {})
  }

  private use(url: string, why: string): void {
    const previous = this.current
    this.memory.answered(url)
    this.chosen = true
    if (previous !== undefined && previous !== url) {
      for (const listener of this.listeners) listener(`using etcd member ${hostOf(url)} (${why})`)
    }
  }

  private async race(): Promise<HandshakeOutcome[]> {
    const order = this.memory.order()
    const candidates = order.filter((url) => !this.breakerOf(url).isOpen(Date.now()))
    const asked = candidates.length > 0 ? candidates : order
    const attempts = this.takeEarly(asked) ?? asked.map((url) => handshake(url, this.pem(), this.handshakeMs))
    return new Promise((resolve) => {
      const outcomes: HandshakeOutcome[] = []
      for (const attempt of attempts) {
        attempt.outcome
          .then((outcome) => {
            outcomes.push(outcome)
            if (outcome.ok && this.current === undefined) {
              this.use(outcome.url, 'answered first')
              // a frozen member's handshake would hold the process until its timeout
              for (const other of attempts) other.cancel()
              resolve(outcomes)
            } else if (outcomes.length === asked.length) resolve(outcomes)
          })
          .catch(() => {})
      }
    })
  }

  /** The early handshakes, when they are of these members and recent enough to stand for new ones. */
  private takeEarly(asked: readonly string[]): Handshake[] | undefined {
    const {early} = this
    this.early = undefined
    if (!early) return undefined
    const same = early.attempts.length === asked.length && early.attempts.every((a) => asked.includes(a.url))
    if (same && Date.now() - early.at < EARLY_FRESH_MS) return early.attempts
    early.cancel()
    return undefined
  }

  private breakerOf(url: string): MemberBreaker {
    let breaker = this.breakers.get(url)
    if (!breaker) {
      breaker = new MemberBreaker()
      this.breakers.set(url, breaker)
    }

    return breaker
  }
}

/** etcd3's per-member policy: a member the pool does not admit is skipped, and etcd3 tries the next one at once. */
export function memberPolicy(pool: EtcdMembers, url: string): PolicyLike {
  return quietPolicy(async (fn, signal) => {
    if (!pool.admits(url)) throw new MemberSkippedError('another member serves the calls')
    try {
      const result = await fn({signal: signal ?? new AbortController().signal})
      pool.succeeded(url)
      return result
    } catch (error) {
      if (error instanceof Error && isRecoverableError(error)) pool.failed(url)
      throw error
    }
  })
}

/** The part of cockatiel's IPolicy that etcd3 calls. */
export interface PolicyLike {
  readonly _altReturn: never
  onSuccess: () => {dispose(): void}
  onFailure: () => {dispose(): void}
  execute<T>(fn: (context: {signal: AbortSignal}) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T>
}

type Execute = <T>(fn: (context: {signal: AbortSignal}) => PromiseLike<T> | T, signal?: AbortSignal) => Promise<T>

/** A policy without cockatiel's events (nothing listens to them). */
export function quietPolicy(execute: Execute): PolicyLike {
  return {
    _altReturn: undefined as never,
    onSuccess: () => ({dispose() {}}),
    onFailure: () => ({dispose() {}}),
    execute,
  }
}

export function hostOf(url: string): string {
  try {
    return new URL(url).host
  } catch {
    return url
  }
}
