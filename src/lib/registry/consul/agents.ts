import type Consul from 'consul'
import {AsyncLocalStorage} from 'node:async_hooks'
import {EventEmitter, setMaxListeners} from 'node:events'
import type {IncomingHttpHeaders} from 'node:http'

import {formatDuration} from '../../duration.js'
import {BackendUnavailableError} from '../../errors.js'
import {MemberPool} from '../core/policy.js'
import {backoffDelay, type BackendOptions, sleep} from '../options.js'
import {formatHosts, type HostPort} from '../spec.js'
import {AgentClients, type ConsulSpec, type Lane} from './clients.js'
import {ConsulError, type ErrorContext, NO_LEADER_HINT, toConsulError, type Unreachable} from './errors.js'

export type {ConsulSpec} from './clients.js'

/** Per-request additions understood by the consul package: papi's cancel context and an absolute timeout. */
export interface RequestExtra {
  ctx: EventEmitter
  timeout: number
  /** Declared so that the consul package's option types (token-only) accept the extras. */
  token?: string
}

export type Request<T> = (client: Consul, extra: RequestExtra) => Promise<T>

export interface Answer {
  headers: IncomingHttpHeaders
  body: unknown
}

export interface CallOptions {
  /** Overall bound; default requestTimeoutMs. */
  deadlineMs?: number
  /** Bound for one attempt on one agent. */
  attemptMs?: number
  signal?: AbortSignal
  /** The keep-alive pool the requests go through (clients.ts). */
  lane?: Lane
}

export type ReadOptions = {index?: string; stale?: boolean; wait?: string}

/** How long a blocking query waits for a change; Consul adds up to 1/16 of it as jitter. */
export const WAIT_MS = 30_000
const STALE_AFTER_NO_LEADER_MS = 30_000
/** What one call has seen so far. */
interface CallState {
  started: number
  deadline: number
  /** Until some agent answers, the call gives up after the connect timeout. */
  noAnswerDeadline: number
  /** The agents that did not answer in this round. */
  round: Map<number, ConsulError>
  rounds: number
  retries: number
  answered?: ConsulError
  unreachable?: ConsulError
}

/** Bound for the /v1/status/leader probe that tells a dead agent from one that waits (for a leader). */
const PROBE_MS = 1000
/** A read that has no answer by then is also sent to the next agent: a frozen agent costs this, not a timeout. */
const HEDGE_MS = 400
/** Answers about an address that waiting does not change. */
const FINAL = new Set<Unreachable>(['not-found', 'refused'])
const SAID: Record<Unreachable, string> = {
  'not-found': 'host not found',
  refused: 'connection refused',
  reset: 'connection reset',
  timeout: 'no answer in time',
}

/**
 * The agents of `spec.hosts`, one client each: requests go to the agent that answered last and fail over to the
 * next one when it does not answer. Every error leaves as a ConsulError.
 */
export class Agents {
  readonly options: BackendOptions
  readonly token?: string
  private readonly hosts: readonly HostPort[]
  private readonly clients: AgentClients
  /** The service the running operation is about (for the permission a 403 names). */
  private readonly subject = new AsyncLocalStorage<string>()
  private readonly events = new EventEmitter()
  /** Aborted on close: cancels whatever is still in flight. */
  readonly lifetime = new AbortController()
  /** The agent that answered last is asked first (a frozen first agent costs one timeout, not one a call). */
  private readonly pool: MemberPool<number>
  /** Reads go to the leader (default consistency) unless it was missing lately; then any server answers (stale). */
  private staleUntil = 0
  private failing = false
  /** Until some agent has answered, switches are not news: an unreachable cluster gets one error line, not a log. */
  private answered = false
  private closed = false

  constructor(spec: ConsulSpec, options: BackendOptions) {
    // every request and every watch loop listens to it
    setMaxListeners(0, this.lifetime.signal)
    this.options = options
    this.clients = new AgentClients(spec)
    this.hosts = this.clients.hosts
    this.token = this.clients.token
    this.pool = new MemberPool(this.hosts.map((_, i) => i))
  }

  get count(): number {
    return this.hosts.length
  }

  get active(): number {
    return this.pool.order()[0]!
  }

  get defaultAttemptMs(): number {
    return Math.max(1000, Math.floor(Math.min(this.options.connectTimeoutMs, this.options.requestTimeoutMs) / 2))
  }

  name(index: number): string {
    return this.clients.name(index)
  }

  all(): string {
    return formatHosts([...this.hosts])
  }

  /** Runs `fn` with `service` as the subject of the permission a refusal names. */
  about<T>(service: string, fn: () => Promise<T>): Promise<T> {
    return this.subject.run(service, fn)
  }

  /** Called with the new agent whenever requests move to another one. */
  onSwitch(listener: (from: number, to: number, reason: string) => void): () => void {
    this.events.on('switch', listener)
    return () => this.events.off('switch', listener)
  }

  assertOpen(): void {
    if (this.closed) throw new ConsulError('the consul registry is closed', {transient: false})
  }

  /** Makes `to` (default: the next agent) current, unless another request already moved on; logs once per outage. */
  failOver(from: number, error: ConsulError, to = (from + 1) % this.hosts.length): void {
    if (this.hosts.length < 2 || this.active !== from || to === from) return
    // known not to answer: ask `to` first from now on
    this.pool.answered(to)
    if (!this.failing) {
      this.failing = true
      if (this.answered)
        this.options.log(`consul agent ${this.name(from)} failed (${error.message}); switching to ${this.name(to)}`)
    }

    this.events.emit('switch', from, to, error.message)
  }

  /**
   * One request to one agent, bounded. A timeout is followed by a quick /v1/status/leader probe: an agent that
   * answers it is alive (typically blocked while the servers have no leader) and is not failed over from.
   */
  async attempt<T>(
    agent: number,
    request: Request<T>,
    timeoutMs: number,
    signal?: AbortSignal,
    /** Bound for the probe after a timeout; 0: none. */
    probeMs = PROBE_MS,
    lane: Lane = 'shared',
  ): Promise<T> {
    this.assertOpen()
    const ctx = new EventEmitter()
    const cancel = (): void => {
      ctx.emit('cancel')
    }

    const signals = signal ? [signal, this.lifetime.signal] : [this.lifetime.signal]
    for (const s of signals) s.addEventListener('abort', cancel, {once: true})
    try {
      if (signals.some((s) => s.aborted)) throw new Error('aborted')
      const value = await request(this.clients.get(agent, lane), {ctx, timeout: Math.max(1, Math.round(timeoutMs))})
      this.answered = true
      if (agent === this.active) this.failing = false
      return value
    } catch (error) {
      if (signals.some((s) => s.aborted)) {
        throw new ConsulError('the consul request was cancelled', {cause: error, transient: false})
      }

      const converted = toConsulError(error, this.errorContext(agent))
      const failure =
        converted.timedOut && probeMs > 0 ? await this.explainTimeout(agent, converted, probeMs, signal) : converted
      if (/no cluster leader/.test(failure.message)) this.staleUntil = Date.now() + STALE_AFTER_NO_LEADER_MS
      throw failure
    } finally {
      for (const s of signals) s.removeEventListener('abort', cancel)
    }
  }

  /** Like `attempt`, keeping the response headers (X-Consul-Index). */
  async attemptWithHeaders(
    agent: number,
    request: Request<unknown>,
    timeoutMs: number,
    signal?: AbortSignal,
    lane: Lane = 'shared',
  ): Promise<Answer> {
    const result = await this.attempt(
      agent,
      (client, extra) => {
        Object.assign(extra.ctx, {includeResponse: true})
        return request(client, extra)
      },
      timeoutMs,
      signal,
      PROBE_MS,
      lane,
    )
    if (!Array.isArray(result) || result.length === 0)
      throw new ConsulError('unexpected answer from consul', {transient: true})
    const [response, body] = result as [{headers?: IncomingHttpHeaders}, unknown]
    return {headers: response.headers ?? {}, body}
  }

  /**
   * A read sent to the current agent and, when it has not answered within HEDGE_MS, to the next one as well: the
   * first answer wins and its agent becomes current. Only for reads (a write twice would register twice).
   */
  async read<T>(request: Request<T>, opts: CallOptions = {}): Promise<{agent: number; value: T}> {
    if (this.hosts.length < 2) return this.call(request, opts)
    const first = this.active
    const second = (first + 1) % this.hosts.length
    const race = new AbortController()
    const stop = (): void => race.abort()
    opts.signal?.addEventListener('abort', stop, {once: true})
    const attemptMs = Math.min(opts.attemptMs ?? this.defaultAttemptMs, this.options.connectTimeoutMs)
    let timer: NodeJS.Timeout | undefined
    try {
      const primary = this.attempt(first, request, attemptMs, race.signal, PROBE_MS, opts.lane).then((value) => ({
        agent: first,
        value,
      }))
      const hedge = new Promise<{agent: number; value: T}>((resolve, reject) => {
        let sent = false
        const send = (): void => {
          if (sent) return
          sent = true
          clearTimeout(timer)
          this.attempt(second, request, attemptMs, race.signal, 0, opts.lane).then(
            (value) => resolve({agent: second, value}),
            reject,
          )
        }

        timer = setTimeout(send, HEDGE_MS)
        // a first agent that refuses at once is not waited for
        primary.catch(() => {
          if (!race.signal.aborted) send()
        })
      })
      const won = await Promise.any([primary, hedge])
      if (won.agent !== first) {
        this.failOver(
          first,
          new ConsulError(`consul agent ${this.name(first)} is slow to answer`, {transient: true}),
          won.agent,
        )
      }

      return won
    } catch {
      if (opts.signal?.aborted) throw new ConsulError('the consul request was cancelled', {transient: false})
      return this.call(request, opts)
    } finally {
      clearTimeout(timer)
      race.abort()
      opts.signal?.removeEventListener('abort', stop)
    }
  }

  /**
   * A request with fail-over: an agent that does not answer makes the next one current; transient errors are
   * retried with backoff. When every agent refuses or is not found: at once, BackendUnavailableError saying so;
   * when none answers within connectTimeoutMs: BackendUnavailableError.
   */
  async call<T>(request: Request<T>, opts: CallOptions = {}): Promise<{agent: number; value: T}> {
    const started = Date.now()
    const deadline = started + (opts.deadlineMs ?? this.options.requestTimeoutMs)
    const state: CallState = {
      started,
      deadline,
      noAnswerDeadline: started + Math.min(this.options.connectTimeoutMs, deadline - started),
      round: new Map(),
      rounds: 0,
      retries: 0,
    }
    for (;;) {
      const agent = this.active
      const {answered} = state
      const until = answered ? state.deadline : state.noAnswerDeadline
      const left = Math.max(1, until - Date.now())
      // once an agent answered but was slow (no leader yet), let it use the time that is left
      const timeoutMs = answered?.transient ? left : Math.min(opts.attemptMs ?? this.defaultAttemptMs, left)
      // the probe after a timeout may not outlast the deadline either
      const probeMs = Math.max(0, Math.min(PROBE_MS, until - Date.now() - timeoutMs))
      try {
        return {agent, value: await this.attempt(agent, request, timeoutMs, opts.signal, probeMs, opts.lane)}
      } catch (error) {
        const failure = error as ConsulError
        if (opts.signal?.aborted || this.lifetime.signal.aborted) throw failure
        await (failure.unreachable
          ? this.noAnswer(agent, failure, state, opts.signal)
          : this.answeredWith(failure, state, opts.signal))
        this.checkDeadlines(state)
      }
    }
  }

  /** One agent did not answer: the next is asked; after a round of refusals, svc says so at once. */
  private async noAnswer(agent: number, failure: ConsulError, state: CallState, signal?: AbortSignal): Promise<void> {
    state.unreachable = failure
    state.round.set(agent, failure)
    this.failOver(agent, failure)
    if (state.round.size < this.hosts.length) return
    if (!state.answered && [...state.round.values()].every((f) => FINAL.has(f.unreachable!))) {
      throw this.unavailable(state.round, state.started, failure)
    }

    // every agent failed once in this round: pause before the next
    state.round.clear()
    const limit = (state.answered ? state.deadline : state.noAnswerDeadline) - Date.now()
    if (limit > 0) await sleep(Math.min(backoffDelay(this.options.retry, state.rounds++), limit), signal)
  }

  /** An agent answered with an error: transient ones are retried with backoff, others thrown. */
  private async answeredWith(failure: ConsulError, state: CallState, signal?: AbortSignal): Promise<void> {
    state.answered = failure
    if (!failure.transient || state.retries >= this.options.retry.attempts) throw failure
    const wait = Math.min(backoffDelay(this.options.retry, state.retries++), Math.max(0, state.deadline - Date.now()))
    await sleep(wait, signal)
  }

  private checkDeadlines(state: CallState): void {
    const now = Date.now() // read once: a deadline passed between two readings showed one agent's error
    if (!state.answered && now >= state.noAnswerDeadline) {
      const detail = `no answer after ${formatDuration(now - state.started)}`
      throw new BackendUnavailableError('consul', this.all(), detail, state.unreachable)
    }

    if (now >= state.deadline) throw state.answered ?? state.unreachable
  }

  /**
   * Read options. A follower's stale view trails the leader by up to a heartbeat, most of a change's latency,
   * so reads are consistent by default; while there is no leader they are stale, so lookups keep answering.
   */
  reads(index?: bigint, waitMs = WAIT_MS): ReadOptions {
    const blocking =
      index === undefined || index === 0n ? {} : {index: index.toString(), wait: `${Math.max(1, Math.round(waitMs))}ms`}
    return Date.now() < this.staleUntil ? {stale: true, ...blocking} : blocking
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.lifetime.abort()
    this.events.removeAllListeners()
    this.clients.destroy()
  }

  /** Refused or not found everywhere: say which, not "no answer". */
  private unavailable(round: Map<number, ConsulError>, started: number, cause: ConsulError): BackendUnavailableError {
    const reasons = new Set([...round.values()].map((f) => f.unreachable!))
    const detail =
      reasons.size === 1
        ? SAID[[...reasons][0]!]
        : [...round.entries()].map(([agent, f]) => `${this.name(agent)}: ${SAID[f.unreachable!]}`).join(', ')
    return new BackendUnavailableError(
      'consul',
      this.all(),
      `${detail}, after ${formatDuration(Date.now() - started)}`,
      cause,
    )
  }

  private async explainTimeout(
    agent: number,
    failure: ConsulError,
    probeMs: number,
    signal?: AbortSignal,
  ): Promise<ConsulError> {
    let leader: unknown
    try {
      leader = await this.attempt(agent, (c, x) => c.status.leader({...x}), probeMs, signal, 0)
    } catch {
      return failure
    }

    const name = this.name(agent)
    return leader
      ? new ConsulError(`consul agent ${name} answers, but too slowly`, {cause: failure, transient: true})
      : new ConsulError(`consul has no cluster leader (agent ${name} waits for one)`, {
          cause: failure,
          hint: NO_LEADER_HINT,
          transient: true,
        })
  }

  errorContext(agent: number): ErrorContext {
    const service = this.subject.getStore()
    return {
      agent: this.name(agent),
      ...(this.token ? {token: this.token} : {}),
      ...(service === undefined ? {} : {service}),
    }
  }
}
