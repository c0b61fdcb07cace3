import {lstat} from 'node:fs/promises'

import {hasErrorCode} from '../../guards.js'
import type {Binding} from '../core/driver.js'
import {touch} from './files.js'

/** A local record's liveness: the mtime of its file, touched at every refresh. */
export class HeartbeatBinding implements Binding {
  readonly file: string

  constructor(file: string) {
    this.file = file
  }

  async refresh(): Promise<'ok' | 'missing'> {
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

    return 'ok'
  }

  async release(): Promise<void> {}
}
