import {lstat} from 'node:fs/promises'

import {hasErrorCode} from '../../guards.js'
import type {Binding} from '../core/driver.js'
import {touch} from './files.js'

/** A local record's liveness: the mtime of its file, touched at every refresh. */
export class HeartbeatBinding implements Binding {
  readonly file: string
  private readonly ttlMs: number
  private lastBeat = Date.now()

  constructor(file: string, ttlMs: number) {
    this.file = file
    this.ttlMs = ttlMs
  }

  /** The file was just written: that is a heartbeat too. */
  beat(): void {
    this.lastBeat = Date.now()
  }

  async refresh(): Promise<'ok' | 'missing'> {
    // a pause longer than the TTL (SIGSTOP, a suspended laptop): readers took the instance as gone meanwhile
    if (Date.now() - this.lastBeat > this.ttlMs) return 'missing'
    try {
      const info = await lstat(this.file)
      if (!info.isFile()) return 'missing'
      await touch(this.file)
    } catch (error) {
      if (hasErrorCode(error, 'ENOENT') || hasErrorCode(error, 'ELOOP') || hasErrorCode(error, 'ENOTDIR')) {
        return 'missing'
      }

      throw error
    }

    this.beat()
    return 'ok'
  }

  async release(): Promise<void> {}
}
