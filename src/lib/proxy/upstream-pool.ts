import type {UpstreamPool} from './routes.js'
import {type PoolClient, UpstreamConnection, UpstreamError} from './upstream-connection.js'

export {type PoolClient, UpstreamConnection, UpstreamError} from './upstream-connection.js'

export interface PoolOptions {
  host: string
  port: number
  /** Open connections at most; further requests wait for one. */
  max: number
  connectTimeoutMs: number
  /** Inactivity on a busy connection (waiting for the response head or between body reads). */
  timeoutMs: number
  /** An idle connection is closed after this long (below node:http's default keep-alive timeout of 5 s). */
  idleMs: number
}

export const DEFAULT_IDLE_MS = 3000

/**
 * The keep-alive connections to one upstream instance: bounded, idle ones closed after `idleMs`, a connection that
 * fails or that the upstream wants closed is discarded. Requests beyond `max` wait in order.
 */
export class ConnectionPool implements UpstreamPool {
  private readonly idle: UpstreamConnection[] = []
  private readonly waiting: PoolClient[] = []
  private readonly all = new Set<UpstreamConnection>()
  private readonly sweeper: NodeJS.Timeout
  /** The instance left the route table: no new requests. */
  closed = false
  private onEmpty: (() => void) | undefined

  constructor(readonly opts: PoolOptions) {
    this.sweeper = setInterval(() => this.sweep(), Math.min(1000, opts.idleMs))
    this.sweeper.unref()
  }

  /** Connections open or opening. */
  get size(): number {
    return this.all.size
  }

  /** Hands `client` a connection now (idle one), once connected (new one), or when one frees up. */
  acquire(client: PoolClient): void {
    if (this.closed) {
      client.onUpstreamError(new UpstreamError('the instance left the route table', 'EPOOLCLOSED'), false)
      return
    }

    const conn = this.idle.pop()
    if (conn !== undefined) {
      conn.client = client
      client.onUpstream(conn)
      return
    }

    if (this.all.size < this.opts.max) this.all.add(new UpstreamConnection(this, client))
    else this.waiting.push(client)
  }

  /** `client` no longer wants a connection. */
  cancel(client: PoolClient): void {
    const i = this.waiting.indexOf(client)
    if (i !== -1) this.waiting.splice(i, 1)
  }

  /**
   * A response ended on `conn` and the connection may be reused, once the read that ended it is parsed: bytes
   * beyond the response (a second, unasked-for response) close it instead of answering the next request.
   */
  release(conn: UpstreamConnection): void {
    conn.client = undefined
    conn.served++
    conn.releasing = true
  }

  /** `conn` is free: it serves the next waiting request, or waits idle. */
  reuse(conn: UpstreamConnection): void {
    if (this.closed || conn.dead) {
      conn.fail(undefined)
      return
    }

    const next = this.waiting.shift()
    if (next !== undefined) {
      conn.client = next
      next.onUpstream(conn)
      return
    }

    conn.idleSince = performance.now()
    this.idle.push(conn)
  }

  /** `conn` closed: forget it, and open a new one for a waiting request. */
  discard(conn: UpstreamConnection): void {
    if (!this.all.delete(conn)) return
    const i = this.idle.indexOf(conn)
    if (i !== -1) this.idle.splice(i, 1)
    const next = this.closed ? undefined : this.waiting.shift()
    if (next !== undefined) this.all.add(new UpstreamConnection(this, next))
    if (this.all.size === 0) this.onEmpty?.()
  }

  /** Stops taking requests, closes idle connections, and resolves once busy ones have finished. */
  async close(): Promise<void> {
    this.shut()
    if (this.all.size === 0) return
    await new Promise<void>((resolve) => {
      this.onEmpty = resolve
    })
  }

  /** Closes every connection now; requests on them fail. */
  async destroy(): Promise<void> {
    this.shut()
    for (const conn of this.all) conn.fail(new UpstreamError('the instance left the route table', 'EPOOLCLOSED'))
  }

  private shut(): void {
    this.closed = true
    clearInterval(this.sweeper)
    for (const client of this.waiting.splice(0)) {
      client.onUpstreamError(new UpstreamError('the instance left the route table', 'EPOOLCLOSED'), false)
    }

    for (const conn of this.idle.splice(0)) conn.fail(undefined)
  }

  private sweep(): void {
    if (this.idle.length === 0) return
    const limit = performance.now() - this.opts.idleMs
    // the oldest idle connections are at the start (idle is used as a stack)
    while (this.idle.length > 0 && this.idle[0]!.idleSince <= limit) this.idle[0]!.fail(undefined)
  }
}
