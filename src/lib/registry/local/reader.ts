import type {Stats} from 'node:fs'
import {lstat, readdir} from 'node:fs/promises'
import path from 'node:path'

import {hasErrorCode} from '../../guards.js'
import type {ReadResult} from '../core/driver.js'
import type {RegistryDirectory} from './directory.js'
import {type FileStamp, readInstanceFile, readInstanceFileSync} from './files.js'
import {OwnerBeats} from './owners.js'
import {decodeFile, expiresAt, type FileRecord} from './record.js'

/** One service directory as read: 'ok', 'missing', or why it must not be used; its files' records. */
export interface ServiceFiles {
  state: string
  records: FileRecord[]
}

/** One service's live records, and when the earliest of them expires. */
export interface ServiceRead {
  records: ReadResult[]
  nextExpiry: number
}

interface Cached extends FileStamp {
  record: FileRecord
}

/**
 * Reads service directories, decoding a file again only when its inode, size, mtime or ctime moved: instance files
 * are written once (atomically, a new inode each time), so a rescan of an unchanged registry is one lstat a file.
 */
export class FileReader {
  private readonly cache = new Map<string, Map<string, Cached>>()
  /** Service directories as last listed, by their times: see serviceFiles. */
  private readonly listings = new Map<string, {stamp: string; records: FileRecord[]}>()

  constructor(private readonly directory: RegistryDirectory) {}

  /** A fresh view of owner heartbeats, for one pass. */
  beats(): OwnerBeats {
    return new OwnerBeats(this.directory.dir)
  }

  /**
   * Every instance file of a service, expired ones included; `known` skips looking at the registry first. With
   * `beats` (a periodic check, not an event), a directory whose times have not moved is not listed again when
   * every owner in it heartbeats by its own file: svc replaces instance files by renaming, which moves them. An
   * older svc's owner touches its files in place instead, so its directory is always listed.
   */
  async serviceFiles(service: string, known = false, beats?: OwnerBeats, sync = false): Promise<ServiceFiles> {
    const {state, stamp} =
      known || (await this.directory.exists()) ? await this.directory.serviceInfo(service) : {state: 'missing'}
    const dir = this.directory.servicePath(service)
    const listed = this.listings.get(dir)
    if (beats && listed && listed.stamp === stamp) return {state, records: listed.records}
    if (state !== 'ok') {
      this.listings.delete(dir)
      this.cache.delete(dir)
      const records = state === 'missing' ? [] : [foreign(dir, `it ${state}`)]
      return {state, records}
    }

    const names = await this.entries(dir)
    const before = this.cache.get(dir) ?? new Map<string, Cached>()
    const after = new Map<string, Cached>()
    const records: FileRecord[] = []
    const found = await Promise.all(
      names.map((name) => this.file(path.join(dir, name), service, before.get(name), sync)),
    )
    for (const [i, name] of names.entries()) {
      const one = found[i]
      if (one === undefined) continue
      if ('ino' in one) after.set(name, one)
      records.push('ino' in one ? one.record : one)
    }

    this.cache.set(dir, after)
    if (beats && stamp !== undefined && (await everyOwnerBeats(records, beats))) {
      this.listings.set(dir, {stamp, records})
    } else {
      this.listings.delete(dir)
    }

    return {state, records}
  }

  /** One instance file, undefined when it is absent. */
  async one(service: string, file: string): Promise<FileRecord | undefined> {
    const dir = path.dirname(file)
    const cached = this.cache.get(dir)?.get(path.basename(file))
    const found = await this.file(file, service, cached)
    return found && 'ino' in found ? found.record : found
  }

  /** The live records of a service files, given owner heartbeats. */
  async live(files: FileRecord[], beats: OwnerBeats, now = Date.now()): Promise<ServiceRead> {
    const read: ServiceRead = {records: [], nextExpiry: Infinity}
    for (const record of files) {
      const until = expiresAt(record, record.owner === undefined ? undefined : await beats.beat(record.owner))
      if (until < now) continue
      read.records.push(record.result)
      if (until !== Infinity) read.nextExpiry = Math.min(read.nextExpiry, until)
    }

    return read
  }

  async entries(dir: string): Promise<string[]> {
    try {
      const entries = await readdir(dir)
      return entries.filter((name) => name.endsWith('.json') && !name.startsWith('.'))
    } catch (error) {
      if (hasErrorCode(error, 'ENOENT') || hasErrorCode(error, 'ENOTDIR')) return []
      throw this.directory.fsError(error)
    }
  }

  /** A file as cached (one lstat) when unchanged, else read (open, fstat, read, close); undefined when absent. */
  private async file(
    file: string,
    service: string,
    cached: Cached | undefined,
    sync = false,
  ): Promise<Cached | FileRecord | undefined> {
    if (cached) {
      let info: Stats
      try {
        info = await lstat(file)
      } catch (error) {
        if (hasErrorCode(error, 'ENOENT') || hasErrorCode(error, 'ENOTDIR')) return undefined
        throw this.directory.fsError(error)
      }

      if (same(cached, info)) return cached
    }

    const read = sync ? readInstanceFileSync(file) : await readInstanceFile(file)
    if (read === undefined) return undefined
    if ('skip' in read) return {...foreign(file, read.skip), ...(read.notFile ? {notFile: true as const} : {})}
    return {...read.stat, record: decodeFile(read.content, read.mtimeMs, file, service)}
  }
}

/** Whether every svc record of a listing names an owner with a heartbeat file (none of an older svc's). */
async function everyOwnerBeats(records: FileRecord[], beats: OwnerBeats): Promise<boolean> {
  for (const record of records) {
    if ('skipped' in record.result) continue
    if (record.owner === undefined || (await beats.beat(record.owner)) === undefined) return false
  }

  return true
}

function same(cached: FileStamp, info: Stats): boolean {
  return (
    cached.ino === info.ino &&
    cached.size === info.size &&
    cached.mtimeMs === info.mtimeMs &&
    cached.ctimeMs === info.ctimeMs
  )
}

function foreign(key: string, reason: string): FileRecord {
  return {result: {skipped: true, key, reason}, mtimeMs: 0, ttlMs: Infinity}
}
