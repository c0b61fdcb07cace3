import {EtcdLeaseInvalidError, type Lease} from 'etcd3'

import {BackendError} from '../../errors.js'
import type {EtcdConnection} from './client.js'
import {cleanMessage} from './errors.js'

/** etcd's lease TTLs are whole seconds; the shortest svc uses is 2 s (one keep-alive can be late). */
export const MIN_TTL_MS = 2000

export function leaseSeconds(ttlMs: number): number {
  return Math.max(MIN_TTL_MS / 1000, Math.ceil(ttlMs / 1000))
}

/**
 * The one lease a registry's records of one TTL share (etcd's pattern: a lease per process, every key attached), kept
 * alive by etcd3 on one stream at a third of the TTL. Refreshes of all its records are coalesced: one keep-alive in
 * flight, and a keep-alive younger than the caller's period answers for it.
 */
export class SharedLease {
  /** The keys this process put on the lease and has not detached. */
  readonly keys = new Set<string>()
  private aliveAt = Date.now()
  private inFlight?: Promise<'ok' | 'missing'>
  private ended = false
  private keepAliveTrouble = false

  private constructor(
    private readonly connection: EtcdConnection,
    private readonly lease: Lease,
    readonly leaseId: string,
    readonly ttlSeconds: number,
    private readonly onLost: (lease: SharedLease, detail: string) => void,
  ) {
    lease.on('lost', (error: Error) => this.lost(error))
    // etcd3 types this argument as a response, but emits the error
    lease.on('keepaliveFailed', (error: unknown) => this.keepAliveFailed(error))
    lease.on('keepaliveSucceeded', () => this.keepAliveWorks())
    // the lease may have been lost between the grant and the listener
    if (lease.revoked()) this.lost(new EtcdLeaseInvalidError(leaseId))
  }

  /** Grants a lease; one that was granted while the operation failed is given up. */
  static async grant(
    connection: EtcdConnection,
    ttlSeconds: number,
    onLost: (lease: SharedLease, detail: string) => void,
  ): Promise<SharedLease> {
    let lease: Lease | undefined
    try {
      return await connection.op(async (client) => {
        lease = client.lease(ttlSeconds)
        const id = await lease.grant()
        return new SharedLease(connection, lease, id, ttlSeconds, onLost)
      })
    } catch (error) {
      const failed = lease
      if (failed) failed.revoke().catch(() => failed.release())
      throw error
    }
  }

  /** Lost, revoked or released: no key can be put on it any more. */
  get dead(): boolean {
    return this.ended || this.lease.revoked()
  }

  /** Puts `value` at `key` on this lease. */
  async put(key: string, value: string): Promise<void> {
    await this.connection.op(() => this.lease.put(key).value(value).exec())
    this.keys.add(key)
  }

  /**
   * Re-asserts the lease: at once when no keep-alive got through within `maxAgeMs`, else answers from the last one.
   * 'missing' when etcd no longer knows the lease.
   */
  refresh(maxAgeMs: number): Promise<'ok' | 'missing'> {
    if (this.dead) return Promise.resolve('missing')
    if (Date.now() - this.aliveAt < maxAgeMs) return Promise.resolve('ok')
    this.inFlight ??= this.keepAliveOnce().finally(() => {
      this.inFlight = undefined
    })
    return this.inFlight
  }

  /** Ends the lease, which removes every key on it. */
  async revoke(): Promise<void> {
    this.ended = true
    await this.connection.op(() => this.lease.revoke())
  }

  /** Stops the keep-alives; the keys still on it expire with the lease. */
  release(): void {
    this.ended = true
    this.lease.release()
  }

  private async keepAliveOnce(): Promise<'ok' | 'missing'> {
    const started = Date.now()
    try {
      // a stream has no deadline of its own: without one, a frozen member would hold the refresh
      await this.connection.op(() => this.lease.keepaliveOnce({deadline: Date.now() + this.connection.attemptMs}))
    } catch (error) {
      if (error instanceof BackendError && error.cause instanceof EtcdLeaseInvalidError) return 'missing'
      throw error
    }

    this.aliveAt = Math.max(this.aliveAt, started)
    // a key deleted by another process leaves the lease alive: the lifecycle's read-back finds that
    return this.dead ? 'missing' : 'ok'
  }

  private lost(error: Error): void {
    if (this.ended) return
    this.ended = true
    // etcd3 gives up a lease it could not keep alive for two TTLs; etcd answers TTL 0 for an expired or revoked one
    const why = /lost connection/i.test(error.message)
      ? `expired: no keep-alive got through for ${2 * this.ttlSeconds}s`
      : error instanceof EtcdLeaseInvalidError
        ? 'expired or was revoked'
        : `was lost (${cleanMessage(error)})`
    this.onLost(this, `lease ${hex(this.leaseId)} of ${this.describeKeys()} ${why}`)
  }

  private keepAliveFailed(error: unknown): void {
    if (this.keepAliveTrouble || this.ended) return
    this.keepAliveTrouble = true
    this.connection.options.log(
      `etcd: keep-alive of lease ${hex(this.leaseId)} for ${this.describeKeys()} failed (${cleanMessage(error)}); retrying`,
    )
  }

  private keepAliveWorks(): void {
    // etcd3's own keep-alive counts as a refresh of every key on the lease
    this.aliveAt = Date.now()
    if (!this.keepAliveTrouble || this.ended) return
    this.keepAliveTrouble = false
    this.connection.options.log(`etcd: keep-alive of lease ${hex(this.leaseId)} for ${this.describeKeys()} works again`)
  }

  private describeKeys(): string {
    const [first] = this.keys
    if (this.keys.size === 1 && first !== undefined) return first
    return `${this.keys.size} keys`
  }
}

export function hex(id: string): string {
  try {
    return BigInt(id).toString(16)
  } catch {
    return id
  }
}
