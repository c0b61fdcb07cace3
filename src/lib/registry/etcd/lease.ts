import {EtcdLeaseInvalidError, type Lease} from 'etcd3'

import {BackendError} from '../../errors.js'
import type {Binding, OwnedRecord} from '../core/driver.js'
import type {EtcdConnection} from './client.js'
import {cleanMessage} from './errors.js'
import {encodeRecord} from './records.js'

/** etcd's lease TTLs are whole seconds; the shortest svc uses is 2 s (one keep-alive can be late). */
export const MIN_TTL_MS = 2000

export function leaseSeconds(ttlMs: number): number {
  return Math.max(MIN_TTL_MS / 1000, Math.ceil(ttlMs / 1000))
}

/**
 * One key on a lease of its own, kept alive by etcd3 (at a third of the TTL) and by the lifecycle's refreshes; a lease
 * that etcd no longer knows reads as missing.
 */
export class LeaseBinding implements Binding {
  private released = false
  private keepAliveTrouble = false

  private constructor(
    private readonly connection: EtcdConnection,
    readonly key: string,
    private readonly lease: Lease,
    readonly leaseId: string,
    private readonly ttlSeconds: number,
    private readonly onLost: (detail: string) => void,
  ) {
    lease.on('lost', (error: Error) => this.lost(error))
    // etcd3 types this argument as a response, but emits the error
    lease.on('keepaliveFailed', (error: unknown) => this.keepAliveFailed(error))
    lease.on('keepaliveSucceeded', () => this.keepAliveWorks())
    // the lease may have been lost between the grant and the listener
    if (lease.revoked()) this.lost(new EtcdLeaseInvalidError(leaseId))
  }

  /** Grants a lease and puts the record on it; on failure the lease is given up. */
  static async create(
    connection: EtcdConnection,
    key: string,
    record: OwnedRecord,
    onLost: (detail: string) => void,
  ): Promise<LeaseBinding> {
    const ttlSeconds = leaseSeconds(record.ttlMs)
    let lease: Lease | undefined
    try {
      return await connection.op(async (client) => {
        lease = client.lease(ttlSeconds)
        const id = await lease.grant()
        await lease.put(key).value(encodeRecord(record)).exec()
        return new LeaseBinding(connection, key, lease, id, ttlSeconds, onLost)
      })
    } catch (error) {
      const failed = lease
      if (failed) failed.revoke().catch(() => failed.release())
      throw error
    }
  }

  async refresh(): Promise<'ok' | 'missing'> {
    if (this.released || this.lease.revoked()) return 'missing'
    try {
      // a stream has no deadline of its own: without one, a frozen member would hold the refresh
      await this.connection.op(() => this.lease.keepaliveOnce({deadline: Date.now() + this.connection.attemptMs}))
    } catch (error) {
      if (error instanceof BackendError && error.cause instanceof EtcdLeaseInvalidError) return 'missing'
      throw error
    }

    // a key deleted by another process leaves its lease alive: the lifecycle's read-back finds that
    return 'ok'
  }

  /** Replaces the value under the same lease. */
  async put(record: OwnedRecord): Promise<void> {
    await this.connection.op(() => this.lease.put(this.key).value(encodeRecord(record)).exec())
  }

  /** Ends the lease, which removes its key with it. */
  async revoke(): Promise<void> {
    this.released = true
    await this.connection.op(() => this.lease.revoke())
  }

  async release(): Promise<void> {
    this.released = true
    // keep-alives stop here; the key, if still there, expires with the lease
    this.lease.release()
  }

  private lost(error: Error): void {
    if (this.released) return
    this.released = true
    // etcd3 gives up a lease it could not keep alive for two TTLs; etcd answers TTL 0 for an expired or revoked one
    const why = /lost connection/i.test(error.message)
      ? `expired: no keep-alive got through for ${2 * this.ttlSeconds}s`
      : error instanceof EtcdLeaseInvalidError
        ? 'expired or was revoked'
        : `was lost (${cleanMessage(error)})`
    this.onLost(`lease ${hex(this.leaseId)} of ${this.key} ${why}`)
  }

  private keepAliveFailed(error: unknown): void {
    if (this.keepAliveTrouble || this.released) return
    this.keepAliveTrouble = true
    this.connection.options.log(
      `etcd: keep-alive of lease ${hex(this.leaseId)} for ${this.key} failed (${cleanMessage(error)}); retrying`,
    )
  }

  private keepAliveWorks(): void {
    if (!this.keepAliveTrouble || this.released) return
    this.keepAliveTrouble = false
    this.connection.options.log(`etcd: keep-alive of lease ${hex(this.leaseId)} for ${this.key} works again`)
  }
}

export function hex(id: string): string {
  try {
    return BigInt(id).toString(16)
  } catch {
    return id
  }
}
