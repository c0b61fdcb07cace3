import {Etcd3, GRPCUnavailableError, type IOptions, isRecoverableError} from 'etcd3'
import {AsyncLocalStorage} from 'node:async_hooks'
import {setMaxListeners} from 'node:events'

import {BackendError, BackendUnavailableError, BugError} from '../../errors.js'
import {type BackendOptions, backoffDelay, type RetryPolicy, sleep} from '../options.js'
import {type BackendSpec, formatHosts} from '../spec.js'
import {connectFailure, type ErrorContext, MemberSkippedError, toBackendError} from './errors.js'
import {type EarlyHandshakes, HANDSHAKE_TIMEOUT_MS, memberUrls} from './handshake.js'
import {EtcdMembers, type HandshakeOutcome, hostOf, memberPolicy, type PolicyLike, quietPolicy} from './members.js'
import {diagnoseTls, muteIpServerNameWarning, type Pem, readPem, securityOptions, unusableTlsFiles} from './security.js'

export type EtcdSpec = Extract<BackendSpec, {kind: 'etcd'}>
type Backoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>

/** The bounds of the operation in progress, seen by the call-options factory and the retry policy. */
interface OperationScope {
  deadline: number
  signal: AbortSignal
}

/** A TLS handshake with a member that just refused gRPC takes milliseconds; the diagnosis must not hold errors up. */
const TLS_PROBE_TIMEOUT_MS = 1000

/**
 * The one etcd3 client of a registry: every request runs through `op`, bounded as a whole by the connect timeout
 * until the cluster has answered once and by the request timeout after, on the member the pool chose.
 */
export class EtcdConnection {
  readonly options: BackendOptions
  readonly prefix: string
  readonly addresses: string
  readonly urls: string[]
  /** etcd3 authenticates against its `hosts` in this order, outside the member policies: the chosen one first. */
  private readonly authOrder: string[]
  readonly pool: EtcdMembers
  readonly context: ErrorContext
  /** One attempt's bound, below the request timeout so that a member that does not answer leaves time for another. */
  readonly attemptMs: number
  private readonly spec: EtcdSpec
  private readonly scope = new AsyncLocalStorage<OperationScope>()
  private readonly closing = new AbortController()
  private pem?: Pem
  private client?: Etcd3
  private reached = false
  private closed = false

  /** `early`: the handshakes openRegistry started before it loaded etcd3, for the first choice of a member. */
  constructor(spec: EtcdSpec, options: BackendOptions, early?: EarlyHandshakes) {
    // every operation in flight listens for close: a burst of them is normal, not a leak
    setMaxListeners(0, this.closing.signal)
    this.spec = spec
    this.options = options
    this.prefix = spec.prefix
    this.addresses = formatHosts(spec.hosts)
    this.urls = memberUrls(spec)
    this.attemptMs = Math.min(2000, Math.max(500, Math.round(options.requestTimeoutMs / 4)))
    this.authOrder = [...this.urls]
    this.context = {addresses: this.addresses, prefix: spec.prefix, user: spec.auth?.user}
    const handshakeMs = Math.min(HANDSHAKE_TIMEOUT_MS, options.connectTimeoutMs)
    this.pool = new EtcdMembers(this.urls, () => this.pem, handshakeMs, early)
  }

  get signal(): AbortSignal {
    return this.closing.signal
  }

  /** Runs one request through the client, within its bounds, and converts what it throws. */
  async op<T>(fn: (client: Etcd3) => Promise<T>): Promise<T> {
    const client = this.get()
    const budget = this.reached ? this.options.requestTimeoutMs : this.options.connectTimeoutMs
    const controller = new AbortController()
    const abort = (): void => controller.abort()
    this.closing.signal.addEventListener('abort', abort, {once: true})
    let timer: NodeJS.Timeout | undefined
    const expired = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        controller.abort()
        // the member that was to answer did not: the next call asks the others
        const member = this.pool.current
        if (member !== undefined) this.pool.failed(member)
        reject(new BackendUnavailableError('etcd', this.addresses, `no answer after ${seconds(budget)}`))
      }, budget)
    })
    const work = this.scope.run({deadline: Date.now() + budget, signal: controller.signal}, async () => {
      const outcomes = await this.pool.choose()
      if (outcomes) this.failFast(outcomes)
      this.authenticateFirstWith(this.pool.current)
      return fn(client)
    })
    work.catch(() => {})
    try {
      const result = await Promise.race([work, expired])
      this.reached = true
      return result
    } catch (error) {
      const failure = this.toError(error)
      // gRPC hides why a connection failed; a TLS handshake of our own tells a TLS problem from a server that is down
      // (only after gRPC gave up on a connection: a member that does not answer at all has had its time already)
      if (error instanceof GRPCUnavailableError) throw (await this.diagnose(failure)) ?? failure
      throw failure
    } finally {
      clearTimeout(timer)
      this.closing.signal.removeEventListener('abort', abort)
    }
  }

  toError(error: unknown): Error {
    return toBackendError(error, this.context)
  }

  /** The client, made on first use. */
  get(): Etcd3 {
    if (this.closed) throw new BugError(`the etcd client of ${this.addresses} was used after close()`)
    if (this.client) return this.client
    if (this.spec.tls) {
      this.pem = readPem(this.spec.tls)
      muteIpServerNameWarning()
    }

    const security = securityOptions(this.spec.auth, this.pem)
    try {
      this.client = new Etcd3({...this.clientOptions(), ...security})
    } catch (error) {
      if (!security.credentials) throw error
      throw unusableTlsFiles(error)
    }

    return this.client
  }

  /** A client of its own for one member, without retries (a status probe reports the member as it is). */
  memberClient(url: string, timeoutMs: number): Etcd3 {
    this.get()
    const once = quietPolicy(async (fn, signal) => fn({signal: signal ?? new AbortController().signal}))
    return new Etcd3({
      hosts: [url],
      ...securityOptions(this.spec.auth, this.pem),
      defaultCallOptions: () => ({deadline: Date.now() + timeoutMs}),
      faultHandling: {global: once, host: () => once},
    })
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.closing.abort()
    this.pool.close()
    this.client?.close()
    this.client = undefined
  }

  private authenticateFirstWith(url: string | undefined): void {
    if (url === undefined || this.authOrder[0] === url) return
    this.authOrder.sort((a, b) => Number(b === url) - Number(a === url))
  }

  /** Every member refused the connection or has no address: say so at once instead of letting gRPC retry. */
  private failFast(outcomes: HandshakeOutcome[]): void {
    const ordered = this.urls.flatMap((url) => outcomes.filter((o) => o.url === url))
    const reasons = ordered.map((o) => (o.ok ? undefined : connectFailure(o.code, hostOf(o.url))))
    if (reasons.length === 0 || reasons.includes(undefined)) return
    throw new BackendUnavailableError('etcd', this.addresses, reasons.join(', '))
  }

  private async diagnose(failure: Error): Promise<BackendError | undefined> {
    const timeoutMs = Math.min(TLS_PROBE_TIMEOUT_MS, this.options.connectTimeoutMs)
    return diagnoseTls(this.urls, this.addresses, this.spec.tls, this.pem, failure, timeoutMs)
  }

  private clientOptions(): IOptions {
    const {attemptMs, options} = this
    const {retry} = options
    return {
      hosts: this.authOrder,
      // gRPC's default reconnect backoff grows to 120 s; keep it short so a restarted member is used again soon.
      grpcOptions: {
        'grpc.initial_reconnect_backoff_ms': Math.max(100, retry.initialDelayMs),
        'grpc.max_reconnect_backoff_ms': Math.max(1000, retry.maxDelayMs),
        // etcd refuses pings more often than every 5 s; these detect a member that vanished under an open watch.
        'grpc.keepalive_time_ms': 10_000,
        'grpc.keepalive_timeout_ms': 5000,
      },
      defaultCallOptions: (context) => {
        if (context.isStream) return {}
        // Calls that outlive their operation (etcd3's keep-alive loop inherits the scope) get a fresh bound.
        const scope = this.scope.getStore()
        const now = Date.now()
        const end = now + attemptMs
        return {deadline: scope && scope.deadline > now ? Math.min(end, scope.deadline) : end}
      },
      faultHandling: {
        global: retryPolicy(retry, Math.max(retry.attempts, this.urls.length) + 1, this.scope, this.closing.signal),
        host: (url) => memberPolicy(this.pool, url),
        watchBackoff: exponentialBackoff(retry, 0),
      },
    }
  }
}

/** Retries transient failures on the next member, with backoff, within the operation's bounds. */
function retryPolicy(
  retry: RetryPolicy,
  maxAttempts: number,
  scope: AsyncLocalStorage<OperationScope>,
  closing: AbortSignal,
): PolicyLike {
  return quietPolicy(async (fn, signal) => {
    // The operation's signal also fires on close; calls outside an operation stop on close.
    const stop = signal ?? scope.getStore()?.signal ?? closing
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn({signal: stop})
      } catch (error) {
        const retryable = error instanceof MemberSkippedError || (error instanceof Error && isRecoverableError(error))
        if (!retryable || attempt + 1 >= maxAttempts || stop.aborted) throw error
        await sleep(backoffDelay(retry, attempt), stop)
        if (stop.aborted) throw error
      }
    }
  })
}

/** etcd3's watch reconnection backoff, following the backend's retry policy. */
function exponentialBackoff(retry: RetryPolicy, attempt: number): Backoff {
  return {
    duration: backoffDelay(retry, attempt),
    next() {
      return exponentialBackoff(retry, attempt + 1)
    },
  }
}

export function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(1))}s`
}
