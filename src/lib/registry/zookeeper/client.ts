import type {ACL} from 'node-zookeeper-client'

import {formatDuration} from '../../duration.js'
import {errorMessage} from '../../errors.js'
import type {DriverEvent} from '../core/driver.js'
import {MemberPool, withPolicy} from '../core/policy.js'
import {backoffDelay, type BackendOptions, sleep} from '../options.js'
import {type BackendSpec, type Credentials, formatHosts} from '../spec.js'
import {effectiveZkAcl} from '../zk-acl.js'
import {authFailed, BACKEND, closedError, toBackendError, unavailable, zkError} from './errors.js'
import {type EarlyProbe, memberAddresses, probeMembers} from './members.js'
import {toAcl} from './security.js'
import {Session, type SessionChange} from './session.js'

export type ZkSpec = Extract<BackendSpec, {kind: 'zk'}>

export const ZK_DEFAULT_SESSION_TIMEOUT_MS = 10_000

/** An early probe serves the first session when that opens this soon after it started (a one-shot command's). */
const EARLY_PROBE_FRESH_MS = 1000

/** What follows the client's sessions: a watch re-arms itself on every (re)connection and new session. */
export interface SessionFollower {
  connected(session: Session, detail: string): void
  disconnected(detail: string): void
  expired(detail: string): void
  /** The client is closing. */
  end(): void
}

/**
 * The one session of a registry, opened on first use and again after it ends (expiry, or a silence longer than
 * its timeout): requests run on it with retries, and its changes become DriverEvents and watch status.
 */
export class ZkClient {
  readonly hosts: string
  readonly auth?: Credentials
  readonly followers = new Set<SessionFollower>()
  private readonly acl: ACL[]
  private readonly options: BackendOptions
  /** Remembers the member that answered, so the next session starts there. */
  private readonly pool: MemberPool<string>
  private readonly shutdown = new AbortController()
  private readonly listeners = new Set<(event: DriverEvent) => void>()
  private readonly warned = new Set<string>()
  private session?: Session
  private opening?: Promise<Session>
  private reopening?: Promise<void>
  private lostTimer?: NodeJS.Timeout
  private sessionTimeoutMs = ZK_DEFAULT_SESSION_TIMEOUT_MS
  private closed = false
  /** The members' probe that openRegistry started while the library loaded, until the first session uses it. */
  private early?: EarlyProbe

  constructor(spec: ZkSpec, options: BackendOptions, early?: EarlyProbe) {
    this.hosts = formatHosts(spec.hosts)
    this.auth = spec.auth
    this.acl = toAcl(effectiveZkAcl(spec.acl, spec.auth !== undefined), spec.auth)
    this.options = options
    this.pool = new MemberPool(memberAddresses(spec))
    this.early = early
  }

  get isClosed(): boolean {
    return this.closed
  }

  /** The session in use, if one is open. */
  get current(): Session | undefined {
    return this.session && !this.session.dead ? this.session : undefined
  }

  /** Whether a new session is being opened after the last one ended. */
  get recovering(): boolean {
    return this.reopening !== undefined
  }

  log(message: string): void {
    this.options.log(message)
  }

  warnOnce(key: string, message: string): void {
    if (this.warned.has(key)) return
    this.warned.add(key)
    this.options.log(message)
  }

  onEvent(listener: (event: DriverEvent) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  retryDelay(attempt: number): number {
    return backoffDelay(this.options.retry, attempt)
  }

  /** The session to use, opened on first use and after it ended; the first contact is bounded by connectTimeoutMs. */
  live(): Promise<Session> {
    if (this.closed) return Promise.reject(closedError())
    if (this.session && !this.session.dead) return Promise.resolve(this.session)
    this.opening ??= this.open().finally(() => {
      this.opening = undefined
    })
    return this.opening
  }

  /**
   * Runs one request under the core's deadline and retry policy (connection loss, fail-over). `pinned` keeps a
   * request on the session that holds its ephemeral znode or its watchers; it is not retried once that session ended.
   */
  async run<T>(what: string, fn: (session: Session) => Promise<T>, pinned?: Session): Promise<T> {
    const {requestTimeoutMs, retry} = this.options
    // an ensemble that cannot be reached was reported by live() within connectTimeoutMs: that is not retried
    const first = pinned ?? (await this.live())
    // closing the client closes its session, so a pinned request stops with either
    const signal = pinned ? pinned.ended : this.shutdown.signal
    return withPolicy({backend: BACKEND, what, deadlineMs: requestTimeoutMs, retry, signal}, async (attempt) => {
      const session = attempt === 0 ? first : (pinned ?? (await this.live()))
      try {
        return await fn(session)
      } catch (error) {
        throw toBackendError(error, what, this.auth)
      }
    })
  }

  /** A record's TTL is the session timeout; it can change only while the session serves nothing else. */
  async useSessionTimeout(ttlMs: number, idle: boolean): Promise<void> {
    const wanted = Math.max(1, Math.round(ttlMs))
    if (wanted === this.sessionTimeoutMs) return
    if (idle && this.followers.size === 0 && !this.opening && !this.reopening) {
      this.sessionTimeoutMs = wanted
      const old = this.session
      this.session = undefined
      await old?.close()
      return
    }

    this.warnOnce(
      `ttl:${wanted}`,
      `${BACKEND}: this registry's session already has a ${this.sessionTimeoutMs} ms timeout; a ttl of ${wanted} ms needs a registry of its own`,
    )
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    clearTimeout(this.lostTimer)
    this.early?.cancel()
    for (const follower of this.followers) follower.end()
    this.followers.clear()
    this.listeners.clear()
    this.shutdown.abort()
    const {opening, session} = this
    this.session = undefined
    // closing the session removes its ephemeral znodes at once
    await Promise.all([session?.close(), opening?.then((s) => s.close()).catch(() => {})])
  }

  private async open(): Promise<Session> {
    const {connectTimeoutMs} = this.options
    const deadline = Date.now() + connectTimeoutMs
    const {early} = this
    this.early = undefined
    const fresh = early !== undefined && Date.now() - early.at < EARLY_PROBE_FRESH_MS
    if (!fresh) early?.cancel()
    const order = await (fresh ? early.order : probeMembers(this.pool, connectTimeoutMs))
    if (this.closed) throw closedError()
    if (order.failure !== undefined) throw unavailable(this.hosts, order.failure)
    const session = new Session({
      hosts: this.hosts,
      timeoutMs: this.sessionTimeoutMs,
      log: (m) => this.log(m),
      acl: this.acl,
      auth: this.auth,
      preferred: order.preferred,
    })
    try {
      await session.connect(Math.max(0, deadline - Date.now()), this.shutdown.signal)
    } catch (error) {
      await session.close()
      if (this.closed) throw closedError()
      if (error instanceof Error && error.message === 'AUTH_FAILED') throw authFailed(`connect to ${this.hosts}`, error)
      throw unavailable(this.hosts, `no answer after ${formatDuration(connectTimeoutMs)}`, {cause: error, silent: true})
    }

    if (this.closed) {
      await session.close()
      throw closedError()
    }

    session.onChange = (change) => this.onSessionChange(session, change)
    this.session = session
    this.pool.answered(session.member)
    if (session.timeoutMs !== this.sessionTimeoutMs) {
      this.warnOnce(
        'negotiated',
        `${BACKEND}: the ensemble set the session timeout to ${session.timeoutMs} ms instead of ${this.sessionTimeoutMs} ms (servers allow 2 to 20 ticks)`,
      )
    }

    return session
  }

  private emit(event: DriverEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event)
      } catch {
        // a failing listener must not stop the others
      }
    }
  }

  private onSessionChange(session: Session, change: SessionChange): void {
    if (session !== this.session || this.closed) return
    switch (change) {
      case 'disconnected': {
        this.log(`${BACKEND}: lost the connection to member ${session.member}; reconnecting`)
        clearTimeout(this.lostTimer)
        // the ensemble ends a session it has not heard from for its timeout: give it up then
        this.lostTimer = setTimeout(
          () =>
            this.ended(
              session,
              `no member answered for ${formatDuration(session.timeoutMs)}; session 0x${session.idHex} has expired`,
            ),
          Math.max(0, session.lastRead + session.timeoutMs - Date.now()),
        )
        this.lostTimer.unref()
        for (const follower of this.followers) follower.disconnected(`lost member ${session.member}`)
        break
      }

      case 'connected': {
        clearTimeout(this.lostTimer)
        this.pool.answered(session.member)
        this.log(`${BACKEND}: reconnected to member ${session.member}`)
        this.emit({
          type: 'reconnected',
          detail: `reconnected to member ${session.member} before session 0x${session.idHex} expired`,
        })
        for (const follower of this.followers) follower.connected(session, `member ${session.member}`)
        break
      }

      case 'expired': {
        this.ended(session, `session 0x${session.idHex} expired`)
        break
      }
    }
  }

  /** The session is over: say so, and open a new one for the watches. */
  private ended(session: Session, detail: string): void {
    if (session !== this.session || this.closed) return
    clearTimeout(this.lostTimer)
    this.session = undefined
    this.log(`${BACKEND}: ${detail}; opening a new session`)
    session.close(zkError(`${detail}: the request is tried again on a new session`, true)).catch(() => {})
    this.emit({type: 'session-lost', detail})
    for (const follower of this.followers) follower.expired(detail)
    // records come back through the core's writes, which open the next session themselves
    if (this.followers.size === 0) return
    this.reopening ??= this.reopen().finally(() => {
      this.reopening = undefined
    })
  }

  private async reopen(): Promise<void> {
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        const session = await this.live()
        for (const follower of this.followers)
          follower.connected(session, `member ${session.member} (new session 0x${session.idHex})`)
        return
      } catch (error) {
        if (this.closed) return
        this.log(`${BACKEND}: cannot open a new session yet: ${errorMessage(error)}`)
        await sleep(backoffDelay(this.options.retry, attempt), this.shutdown.signal)
      }
    }
  }
}
