import type {Socket} from 'node:net'
import zookeeper, {type ACL, type Client, type State} from 'node-zookeeper-client'

import {BackendError, errorMessage} from '../../errors.js'
import type {Credentials} from '../spec.js'
import {BACKEND, closedError, expiredError} from './errors.js'
import {authInfo} from './security.js'
import {batchWrites, readWholeFrames, type WireInternals} from './wire.js'

export type Done<T> = (error: Error | zookeeper.Exception | null, value?: T) => void
export type SessionChange = 'connected' | 'disconnected' | 'expired'

/** Pause between rounds over all members when none answers (the library's default is 1 s). */
const SPIN_DELAY_MS = 250
const CLOSE_WAIT_MS = 1000

/** The parts of node-zookeeper-client's connection manager svc needs and the library does not expose. */
interface ConnectionInternals extends WireInternals {
  state: number
  servers?: Array<{host: string; port: string | number}>
  connectTimeoutHandler?: NodeJS.Timeout | null
  setState(state: number): void
}

/** ConnectionManager.STATES in node-zookeeper-client. */
const CM_CLOSING = -1
const CM_CLOSED = -2

function internals(client: Client): ConnectionInternals | undefined {
  const cm: unknown = (client as unknown as {connectionManager?: unknown}).connectionManager
  if (typeof cm === 'object' && cm !== null && 'setState' in cm && typeof cm.setState === 'function') {
    return cm as ConnectionInternals
  }

  return undefined
}

export interface SessionOptions {
  hosts: string
  timeoutMs: number
  log: (message: string) => void
  acl: ACL[]
  auth?: Credentials
  /** Members to try first, in this order (the ones that answered a probe); the library shuffles the others. */
  preferred?: readonly string[]
}

/**
 * One ZooKeeper session over node-zookeeper-client, which fails over between the members by itself. Adds what the
 * library lacks: a read timeout (a member that stops answering without closing the connection is left for the
 * next one, as the Java client does), and requests that fail when the session ends instead of hanging.
 */
export class Session {
  readonly client: Client
  /** The ACL of every znode this session creates. */
  readonly acl: ACL[]
  connected = false
  expired = false
  closed = false
  member = ''
  onChange?: (change: SessionChange) => void
  /** When the current member last sent anything. */
  lastRead = 0
  private readonly log: (message: string) => void
  private readonly end = new AbortController()
  private closeReason = closedError()
  private readonly inflight = new Set<(error: unknown) => void>()
  private watchdog?: NodeJS.Timeout
  private socket?: Socket
  /** The sockets corked for the rest of this turn of the event loop. */
  private readonly corked = new WeakSet<Socket>()
  /** How long one member may take to answer the handshake: the Java client's share of the timeout per member. */
  private readonly handshakeMs: number

  constructor(options: SessionOptions) {
    const {hosts, timeoutMs, auth} = options
    this.log = options.log
    this.acl = options.acl
    this.handshakeMs = Math.max(500, Math.floor(timeoutMs / hosts.split(',').length))
    this.client = zookeeper.createClient(hosts, {sessionTimeout: timeoutMs, spinDelay: SPIN_DELAY_MS, retries: 0})
    const cm = internals(this.client)
    if (cm) readWholeFrames(cm)
    if (options.preferred?.length) this.prefer(options.preferred)
    // the library sends it again on every (re)connection of this session; a new session gets it from its constructor
    if (auth) this.client.addAuthInfo('digest', authInfo(auth))
    this.client.on('state', (state: State) => this.onState(state))
  }

  get dead(): boolean {
    return this.expired || this.closed
  }

  /** Aborted when the session has expired or was closed. */
  get ended(): AbortSignal {
    return this.end.signal
  }

  get id(): Buffer {
    return this.client.getSessionId()
  }

  get idHex(): string {
    return this.id.toString('hex')
  }

  /** The timeout the ensemble granted (the requested one before the first connection). */
  get timeoutMs(): number {
    return this.client.getSessionTimeout()
  }

  connect(timeoutMs: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const finish = (error?: Error): void => {
        clearTimeout(timer)
        signal.removeEventListener('abort', onAbort)
        this.client.removeListener('state', onState)
        if (error) reject(error)
        else resolve()
      }

      const onState = (state: State): void => {
        if (state === zookeeper.State.SYNC_CONNECTED) finish()
        else if (state === zookeeper.State.EXPIRED || state === zookeeper.State.AUTH_FAILED)
          finish(new Error(state.name))
      }

      const onAbort = (): void => finish(closedError())
      const timer = setTimeout(() => finish(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs)
      signal.addEventListener('abort', onAbort, {once: true})
      this.client.on('state', onState)
      this.client.connect()
      this.startWatchdog()
    })
  }

  /**
   * Closes the session (its ephemeral znodes go with it) and releases the socket and timers, even when no member
   * answers. `reason` is what its requests fail with from now on: a session given up as ended fails them as a
   * transient error, so that they are retried on the next session.
   */
  async close(reason: BackendError = closedError()): Promise<void> {
    if (this.closed) return
    const wasConnected = this.connected && !this.expired
    this.closed = true
    this.closeReason = reason
    this.connected = false
    clearInterval(this.watchdog)
    this.end.abort()
    this.abandon(reason)
    const cm = internals(this.client)
    if (wasConnected) await this.closeGracefully()
    if (!cm) {
      try {
        if (!wasConnected) this.client.close()
      } catch {
        // nothing to close: the library never opened a socket
      }

      return
    }

    // stop the library's reconnect loop and its timers, whatever state it is in
    if (cm.state !== CM_CLOSED) cm.setState(CM_CLOSING)
    if (cm.connectTimeoutHandler) clearTimeout(cm.connectTimeoutHandler)
    cm.socket?.destroy()
  }

  /** Wraps one callback request; it fails at once when the session has ended, and when the session ends under it. */
  call<T>(invoke: (done: Done<T>) => void): Promise<T> {
    if (this.closed) return Promise.reject(this.closeReason)
    if (this.expired) return Promise.reject(expiredError(this.idHex))
    const cm = internals(this.client)
    if (cm) batchWrites(cm, this.corked)
    return new Promise<T>((resolve, reject) => {
      this.inflight.add(reject)
      try {
        invoke((error, value) => {
          this.inflight.delete(reject)
          if (error) reject(error)
          else resolve(value as T)
        })
      } catch (error) {
        // the library validates paths and sizes by throwing
        this.inflight.delete(reject)
        reject(new BackendError(BACKEND, errorMessage(error), {cause: error, transient: false}))
      }
    })
  }

  private closeGracefully(): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, CLOSE_WAIT_MS)
      const onState = (state: State): void => {
        if (state === zookeeper.State.DISCONNECTED) done()
      }

      const client = this.client
      function done(): void {
        clearTimeout(timer)
        client.removeListener('state', onState)
        resolve()
      }

      client.on('state', onState)
      client.close()
    })
  }

  /** Moves the preferred members to the front of the library's (shuffled) server list. */
  private prefer(preferred: readonly string[]): void {
    const servers = internals(this.client)?.servers
    if (!servers) return
    const rank = (s: {host: string; port: string | number}): number => {
      const at = preferred.indexOf(`${s.host}:${s.port}`)
      return at === -1 ? preferred.length : at
    }

    servers.sort((a, b) => rank(a) - rank(b))
  }

  private abandon(error: unknown): void {
    for (const reject of this.inflight) reject(error)
    this.inflight.clear()
  }

  private onState(state: State): void {
    if (this.closed) return
    switch (state) {
      case zookeeper.State.SYNC_CONNECTED: {
        this.connected = true
        this.member = this.remote()
        this.track()
        this.lastRead = Date.now()
        this.onChange?.('connected')
        break
      }

      case zookeeper.State.DISCONNECTED: {
        if (!this.connected) return
        this.connected = false
        this.onChange?.('disconnected')
        break
      }

      case zookeeper.State.EXPIRED: {
        this.expired = true
        this.connected = false
        clearInterval(this.watchdog)
        this.end.abort()
        this.abandon(expiredError(this.idHex))
        this.onChange?.('expired')
        break
      }
    }
  }

  private remote(): string {
    const socket = internals(this.client)?.socket
    const host = socket?.remoteAddress
    if (!host || !socket.remotePort) return 'unknown'
    return host.includes(':') ? `[${host}]:${socket.remotePort}` : `${host}:${socket.remotePort}`
  }

  /**
   * The library pings every third of the timeout, so a member silent for two thirds of it is gone; the library
   * would wait forever on it (and on one that accepts the connection but never completes the handshake, such as a
   * stopped process). Its socket is closed, and the library moves on to the next member.
   */
  private startWatchdog(): void {
    const tick = (): void => {
      const socket = this.track()
      if (!socket) return
      const limit = this.connected ? Math.floor((this.timeoutMs * 2) / 3) : this.handshakeMs
      if (Date.now() - this.lastRead <= limit) return
      const whom = this.connected ? `member ${this.member}` : `${socket.remoteAddress}:${socket.remotePort}`
      this.log(`${BACKEND}: ${whom} has not answered for ${limit} ms; trying another member`)
      socket.destroy()
    }

    this.watchdog = setInterval(tick, Math.max(100, Math.floor(this.handshakeMs / 4)))
    this.watchdog.unref()
  }

  /** The library's current socket, counting its reads from the moment it is first seen. */
  private track(): Socket | undefined {
    const socket = internals(this.client)?.socket
    if (!socket || socket.destroyed) return undefined
    if (socket !== this.socket) {
      this.socket = socket
      this.lastRead = Date.now()
      socket.on('data', () => {
        this.lastRead = Date.now()
      })
    }

    return socket
  }
}
