import type {IKeyValue} from 'etcd3'

import type {Binding, OwnedRecord} from '../core/driver.js'
import type {EtcdConnection} from './client.js'
import {leaseSeconds, type SharedLease} from './lease.js'
import {encodeRecord} from './records.js'

/** What a binding asks of the driver that holds the shared leases. */
export interface LeaseHolder {
  /** The binding currently standing for `key` (a re-created record's new one replaces the old). */
  current(key: string): KeyBinding | undefined
  /** Forgets `key`'s binding, and gives up its lease when no key of this process is left on it. */
  detach(binding: KeyBinding): void
  /** The key as etcd holds it now (read with the other lookups of this turn). */
  lookup(key: string): Promise<IKeyValue | undefined>
}

/**
 * One key on its registry's shared lease. Refreshing it re-asserts the shared lease (coalesced with every other key's
 * refresh); releasing it leaves the key to expire with its TTL, as a key of its own lease would.
 */
export class KeyBinding implements Binding {
  private released = false
  private value: string

  constructor(
    private readonly connection: EtcdConnection,
    private readonly holder: LeaseHolder,
    readonly lease: SharedLease,
    readonly key: string,
    private readonly record: OwnedRecord,
  ) {
    this.value = encodeRecord(record)
  }

  refresh(): Promise<'ok' | 'missing'> {
    if (this.released) return Promise.resolve('missing')
    // a keep-alive within half the period answers for this key too: N records cost one keep-alive per period
    return this.lease.refresh(this.record.refreshMs / 2)
  }

  /** Replaces the value under the same lease. */
  async put(record: OwnedRecord): Promise<void> {
    const value = encodeRecord(record)
    await this.lease.put(this.key, value)
    this.value = value
  }

  async release(): Promise<void> {
    if (this.released) return
    this.released = true
    if (this.holder.current(this.key) !== this) return
    this.holder.detach(this)
    // the last key of the lease expires with it; another key moves to a lease of its own that nobody keeps alive
    if (this.lease.dead || this.lease.keys.size === 0) return
    await this.expireAlone().catch(() => {})
  }

  /** The binding gave up its key, which was removed: nothing is left to release. */
  forget(): void {
    this.released = true
  }

  /** Moves the key, if it is still on the shared lease, to a lease granted for it alone and not kept alive. */
  private async expireAlone(): Promise<void> {
    const {lease, key} = this
    // a key already gone or taken over (a registry closing after its keys were removed) needs no lease of its own
    const current = await this.holder.lookup(key)
    if (current?.lease !== lease.leaseId) return
    await this.connection.op(async (client) => {
      const own = client.lease(leaseSeconds(this.record.ttlMs), {autoKeepAlive: false})
      try {
        const id = await own.grant()
        await client.if(key, 'Lease', '==', lease.leaseId).then(client.put(key).value(this.value).lease(id)).commit()
      } finally {
        own.release()
      }
    })
  }
}
