import {hostname} from 'node:os'

import {hasErrorCode} from '../../guards.js'
import {randomHex} from '../../random-hex.js'
import type {Owner} from './driver.js'

let self: Owner | undefined

/** This process as the owner of the records it writes: one nonce per process start. */
export function currentOwner(): Owner {
  self ??= {host: hostname(), pid: process.pid, nonce: randomHex(8)}
  return self
}

export function sameOwner(a: Owner, b: Owner): boolean {
  return a.host === b.host && a.pid === b.pid && a.nonce === b.nonce
}

/**
 * Whether an owner may still be alive. Only a process of this host can be probed; an owner on another host is
 * taken as alive, since the backend's liveness primitive (session, lease, TTL) still holds its record.
 */
export function ownerAlive(owner: Owner): boolean {
  if (owner.host !== currentOwner().host) return true
  // a record naming this pid with another nonce was written by an earlier process that had the same pid
  if (owner.pid === process.pid) return owner.nonce === currentOwner().nonce
  try {
    process.kill(owner.pid, 0)
    return true
  } catch (error) {
    // EPERM: the process exists but belongs to another user
    return !hasErrorCode(error, 'ESRCH')
  }
}

/** "pid 4242 on host build-7", for messages. */
export function describeOwner(owner: Owner): string {
  return `pid ${owner.pid} on host ${owner.host}`
}
