/* eslint-disable no-bitwise -- file modes are bit masks */
import {constants, type Stats} from 'node:fs'
import {chmod, lstat, mkdir, open, readdir} from 'node:fs/promises'
import path from 'node:path'

import {UserError} from '../../errors.js'
import {hasErrorCode} from '../../guards.js'
import type {ForeignRecords} from '../core/foreign.js'
import {validateServiceName} from '../validate.js'

/** Marks a directory as an svc registry, so that svc writes into it and into no other non-empty directory. */
export const MARKER = '.svc-registry'

/** The directory of owner heartbeats (owners.ts), beside the service directories: no service can have its name. */
export const OWNERS_DIR = '.svc@owners'

/**
 * The registry directory. Reads only look: they never create, chmod or remove anything. Writes create it (and
 * its missing parents) at 0700, and refuse a directory that is not an svc registry and is not empty.
 */
export class RegistryDirectory {
  readonly dir: string
  private readonly log: (message: string) => void
  private ready?: Promise<void>

  constructor(dir: string, log: (message: string) => void) {
    this.dir = dir
    this.log = log
  }

  /**
   * False when the directory does not exist; throws when it must not be used (a symbolic link, not a directory,
   * someone else's, or a shared sticky directory such as /tmp).
   */
  async exists(): Promise<boolean> {
    let info: Stats
    try {
      info = await lstat(this.dir)
    } catch (error) {
      if (hasErrorCode(error, 'ENOENT')) return false
      throw this.fsError(error)
    }

    const why = foreignDirectory(info)
    if (why) throw this.refused(this.dir, why)
    return true
  }

  /** Makes the directory ready for a write, once; again after it was removed under us. */
  prepare(): Promise<void> {
    this.ready ??= this.create().catch((error: unknown) => {
      this.ready = undefined
      throw error
    })
    return this.ready
  }

  /** 'ok' for a real directory of ours, 'missing', or why it must not be used. */
  async serviceState(service: string): Promise<string> {
    return (await this.serviceInfo(service)).state
  }

  /** The state, and the directory's own times when it is 'ok' (a rename or removal inside moves them). */
  async serviceInfo(service: string): Promise<{state: string; stamp?: string}> {
    try {
      const info = await lstat(this.servicePath(service))
      const state = foreignDirectory(info, {sticky: false}) ?? 'ok'
      return state === 'ok' ? {state, stamp: `${info.ino}:${info.mtimeMs}:${info.ctimeMs}`} : {state}
    } catch (error) {
      if (hasErrorCode(error, 'ENOENT') || hasErrorCode(error, 'ENOTDIR')) return {state: 'missing'}
      throw this.fsError(error)
    }
  }

  /** The directory of one service, created at 0700 when missing (with the registry, if that was removed). */
  async prepareService(service: string, again = true): Promise<string> {
    await this.prepare()
    const dir = this.servicePath(service)
    const state = await this.serviceState(service)
    if (state === 'ok') return dir
    if (state !== 'missing') throw this.refused(dir, state)
    try {
      await mkdir(dir, {mode: 0o700})
    } catch (error) {
      if (hasErrorCode(error, 'ENOENT') && again) {
        this.ready = undefined
        return this.prepareService(service, false)
      }

      if (!hasErrorCode(error, 'EEXIST')) throw this.fsError(error)
    }

    const after = await this.serviceState(service)
    if (after !== 'ok') throw this.refused(dir, after === 'missing' ? 'vanished after it was created' : after)
    await chmod(dir, 0o700).catch((error: unknown) => {
      throw this.fsError(error)
    })
    return dir
  }

  /** The service directories; entries that cannot be services are skipped through `foreign`. */
  async serviceNames(foreign: ForeignRecords): Promise<string[]> {
    if (!(await this.exists())) return []
    let entries
    try {
      entries = await readdir(this.dir, {withFileTypes: true})
    } catch (error) {
      if (hasErrorCode(error, 'ENOENT')) return []
      throw this.fsError(error)
    }

    const names: string[] = []
    for (const e of entries) {
      // the owners' heartbeats: a name no service can have
      if (e.name === OWNERS_DIR) continue
      const key = path.join(this.dir, e.name)
      if (e.isSymbolicLink())
        foreign.skip({skipped: true, key, reason: 'it is a symbolic link, which svc does not follow'})
      else if (!e.isDirectory()) continue
      else if (isServiceName(e.name)) names.push(e.name)
      else foreign.skip({skipped: true, key, reason: 'its name is not a valid service name'})
    }

    return names
  }

  servicePath(service: string): string {
    return path.join(this.dir, service)
  }

  refused(dir: string, why: string): UserError {
    return new UserError(
      `refusing the local registry directory ${dir}: it ${why}`,
      'use a directory of your own: set SVC_HOME, or --backend local:///path/you/own',
    )
  }

  fsError(error: unknown): Error {
    if (hasErrorCode(error, 'EACCES') || hasErrorCode(error, 'EPERM') || hasErrorCode(error, 'EROFS')) {
      return new UserError(
        `cannot write the local registry at ${this.dir}`,
        'set SVC_HOME to a writable directory, or use --backend local:///writable/dir',
      )
    }

    return error instanceof Error ? error : new Error(String(error))
  }

  private async create(): Promise<void> {
    if (await this.exists()) {
      await this.adopt()
      return
    }

    let first: string | undefined
    try {
      first = await mkdir(this.dir, {recursive: true, mode: 0o700})
    } catch (error) {
      throw this.fsError(error)
    }

    // mkdir's mode is filtered by the umask: set it on every directory this call created
    if (first !== undefined) {
      for (let d = this.dir; ; d = path.dirname(d)) {
        await chmod(d, 0o700).catch((error: unknown) => {
          throw this.fsError(error)
        })
        if (d === first || path.dirname(d) === d) break
      }
    }

    if (!(await this.exists())) throw new Error(`${this.dir} vanished after it was created`)
    await this.mark()
  }

  /** An existing directory: an svc registry (marked, or empty) is used and kept private; any other is refused. */
  private async adopt(): Promise<void> {
    const entries = await readdir(this.dir).catch((error: unknown) => {
      throw this.fsError(error)
    })
    if (!entries.includes(MARKER)) {
      if (entries.length > 0 && !(await this.looksLikeRegistry(entries))) {
        throw new UserError(
          `refusing to write into ${this.dir}: it is not an svc registry and it is not empty`,
          'point SVC_HOME or --backend local:///path at an empty directory or one svc created',
        )
      }

      await this.mark()
    }

    const info = await lstat(this.dir)
    // a looser mode on a registry of our own is an accident (an old umask or tool): close it, on a write only
    if ((info.mode & 0o077) !== 0) {
      await chmod(this.dir, 0o700).catch((error: unknown) => {
        throw this.fsError(error)
      })
      this.log(`tightened ${this.dir} from mode ${octal(info.mode)} to 0700: the registry is private to its owner`)
    }
  }

  /** A registry of an svc version before the marker: service directories holding instance files only. */
  private async looksLikeRegistry(entries: string[]): Promise<boolean> {
    for (const name of entries) {
      if (name.startsWith('.')) continue
      if (!isServiceName(name) || (await this.serviceState(name)) !== 'ok') return false
      const files = await readdir(this.servicePath(name))
      if (!files.every((f) => f.endsWith('.json') || f.startsWith('.tmp-'))) return false
    }

    return true
  }

  private async mark(): Promise<void> {
    try {
      // O_EXCL with O_NOFOLLOW: a planted link at the marker's name is never written through
      const handle = await open(
        path.join(this.dir, MARKER),
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0),
        0o600,
      )
      await handle.close()
    } catch (error) {
      if (!hasErrorCode(error, 'EEXIST')) throw this.fsError(error)
    }
  }
}

/** Why a directory must not hold (or be) the registry, or undefined when it is a real directory of ours. */
function foreignDirectory(info: Stats, opts: {sticky?: boolean} = {}): string | undefined {
  if (info.isSymbolicLink()) return 'is a symbolic link, which svc does not follow'
  if (!info.isDirectory()) return 'is not a directory'
  const uid = process.getuid?.()
  if (uid !== undefined && info.uid !== uid) return `belongs to uid ${info.uid}, not to uid ${uid}`
  // a sticky directory (/tmp) is shared by design: svc must not lock it down, nor trust what others put there
  if (opts.sticky !== false && (info.mode & 0o1000) !== 0) return 'is a shared sticky directory such as /tmp'
  return undefined
}

/** A directory entry that can be a service's folder (the marker, the owners' folder and temp files cannot). */
export function isServiceName(name: string): boolean {
  try {
    validateServiceName(name)
    return true
  } catch {
    return false
  }
}

function octal(mode: number): string {
  return '0' + (mode & 0o7777).toString(8)
}
