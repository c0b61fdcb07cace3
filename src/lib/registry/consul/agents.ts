import type Consul from 'consul'
import {AsyncLocalStorage} from 'node:async_hooks'
import {EventEmitter, setMaxListeners} from 'node:events'
import type {IncomingHttpHeaders} from 'node:http'

import {formatDuration} from '../../duration.js'
import {BackendUnavailableError} from '../../errors.js'
import {type MemberCallPolicy, MemberPool, withMembers} from '../core/policy.js'
import type {BackendOptions} from '../options.js'
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
  /** What Consul tells the core's member policy: which errors mean "no answer", and how to say that none answered. */
  private readonly hooks: Omit<MemberCallPolicy<number>, 'deadlineMs' | 'attemptMs'>
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
    this.hooks = {
      firstAnswerMs: options.connectTimeoutMs,
      retry: options.retry,
      unreachable: (error) => error instanceof ConsulError && error.unreachable !== undefined,
      hopeless: (round, elapsedMs) => this.unavailable(round, elapsedMs),
      noAnswer: (elapsedMs, last) =>
        new BackendUnavailableError('consul', this.all(), `no answer after ${formatDuration(elapsedMs)}`, last),
      movedOn: (from, to, error) =>
        this.switched(
          from,
          to,
          error instanceof ConsulError
            ? error
            : new ConsulError(`consul agent ${this.name(from)} is slow to answer`, {transient: true}),
        ),
    }
  }

  get count(): number {
    return this.hosts.length
  }

  get active(): number {
    return this.pool.current
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
  failOver(from: number, error: ConsulError, to?: number): void {
    if (this.pool.failed(from, to)) this.switched(from, this.active, error)
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
    try {
      return await this.send(agent, request, timeoutMs, signal, lane)
    } catch (error) {
      throw await this.explain(agent, error, probeMs, signal)
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
   * A read: like `call`, and when the current agent has not answered within HEDGE_MS, the next one is asked as
   * well: the first answer wins and its agent becomes current. Only for reads (a write twice would register twice).
   */
  async read<T>(request: Request<T>, opts: CallOptions = {}): Promise<{agent: number; value: T}> {
    return this.run(request, opts, HEDGE_MS)
  }

  /**
   * A request under the core's member policy: an agent that does not answer makes the next one current; transient
   * errors are retried with backoff. When every agent refuses or is not found: at once, BackendUnavailableError
   * saying so; when none answers within connectTimeoutMs: BackendUnavailableError.
   */
  async call<T>(request: Request<T>, opts: CallOptions = {}): Promise<{agent: number; value: T}> {
    return this.run(request, opts)
  }

  private async run<T>(request: Request<T>, opts: CallOptions, hedgeMs?: number): Promise<{agent: number; value: T}> {
    const policy: MemberCallPolicy<number> = {
      ...this.hooks,
      deadlineMs: opts.deadlineMs ?? this.options.requestTimeoutMs,
      attemptMs: opts.attemptMs ?? this.defaultAttemptMs,
      ...(opts.signal ? {signal: opts.signal} : {}),
      ...(hedgeMs === undefined ? {} : {hedgeMs}),
      explain: (agent, error, withinMs) => this.explain(agent, error, Math.min(PROBE_MS, withinMs), opts.signal),
    }
    const {member, value} = await withMembers(this.pool, policy, (agent, timeoutMs, signal) =>
      this.send(agent, request, timeoutMs, signal, opts.lane),
    )
    return {agent: member, value}
  }

  /** One request to one agent, bounded; every error leaves as a ConsulError. */
  private async send<T>(
    agent: number,
    request: Request<T>,
    timeoutMs: number,
    signal?: AbortSignal,
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

      throw this.noted(toConsulError(error, this.errorContext(agent)))
    } finally {
      for (const s of signals) s.removeEventListener('abort', cancel)
    }
  }

  /** A timeout, probed within `probeMs`: a dead agent, or one that waits for a leader; other errors as they are. */
  private async explain(agent: number, error: unknown, probeMs: number, signal?: AbortSignal): Promise<unknown> {
    if (!(error instanceof ConsulError) || !error.timedOut || probeMs <= 0) return error
    let leader: unknown
    try {
      leader = await this.send(agent, (c, x) => c.status.leader({...x}), probeMs, signal)
    } catch {
      return error
    }

    const name = this.name(agent)
    return this.noted(
      leader
        ? new ConsulError(`consul agent ${name} answers, but too slowly`, {cause: error, transient: true})
        : new ConsulError(`consul has no cluster leader (agent ${name} waits for one)`, {
            cause: error,
            hint: NO_LEADER_HINT,
            transient: true,
          }),
    )
  }

  /** While there is no leader, reads turn stale (any server answers them). */
  private noted(error: ConsulError): ConsulError {
    if (/no cluster leader/.test(error.message)) this.staleUntil = Date.now() + STALE_AFTER_NO_LEADER_MS
    return error
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

  /** Requests moved to another agent: logged once per outage, and told to the listeners. */
  private switched(from: number, to: number, error: ConsulError): void {
    if (!this.failing) {
      this.failing = true
      if (this.answered)
        this.options.log(`consul agent ${this.name(from)} failed (${error.message}); switching to ${this.name(to)}`)
    }

    this.events.emit('switch', from, to, error.message)
  }

  /** Refused or not found everywhere: say which, not "no answer"; undefined while waiting may help. */
  private unavailable(round: ReadonlyMap<number, unknown>, elapsedMs: number): BackendUnavailableError | undefined {
    const failures = [...round.entries()].flatMap(([agent, f]) =>
      f instanceof ConsulError && f.unreachable && FINAL.has(f.unreachable) ? [[agent, f.unreachable] as const] : [],
    )
    if (failures.length < round.size) return undefined
    const reasons = new Set(failures.map(([, reason]) => reason))
    const detail =
      reasons.size === 1
        ? SAID[[...reasons][0]!]
        : failures.map(([agent, reason]) => `${this.name(agent)}: ${SAID[reason]}`).join(', ')
    const cause = [...round.values()].at(-1)
    return new BackendUnavailableError('consul', this.all(), `${detail}, after ${formatDuration(elapsedMs)}`, cause)
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
