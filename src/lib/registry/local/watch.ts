import {type FSWatcher, lstatSync, watch as fsWatch} from 'node:fs'

import {hasErrorCode} from '../../guards.js'
import type {DriverWatchSink, ReadResult} from '../core/driver.js'
import {isServiceName, MARKER, OWNERS_DIR, type RegistryDirectory} from './directory.js'
import type {OwnerBeats} from './owners.js'
import type {FileReader} from './reader.js'
import type {FileRecord} from './record.js'

/** Events within this long are read in one pass (an atomic write is a create and a rename). */
const SETTLE_MS = 5
/** The full rescan that catches what file-system events missed (a watcher that failed, an overflow). */
export const RESCAN_MS = 30_000
/** Service directories a rescan reads at once. */
const RESCAN_CONCURRENCY = 32
/** How often a watch looks for a registry that does not exist yet. */
const ABSENT_POLL_MS = 500

export interface WatchSource {
  directory: RegistryDirectory
  reader: FileReader
  /** The services watched: every service directory, or the one named. */
  serviceNames(): Promise<string[]>
  /** The one service watched, when not all. */
  only: string | undefined
}

/** The live set of a service, to tell whether an expiry changed it. */
function signature(records: readonly ReadResult[]): string {
  return records.map((r) => ('skipped' in r ? r.key : r.instance.id)).join('\n')
}

/** One watched service: its files as last read, and which of them were live at the last publish. */
interface Watched {
  files: FileRecord[]
  live: string
  nextExpiry: number
}

/**
 * The local backend's native watch: file-system events name the one service directory (or registry entry) that
 * changed, and only that service is read again and published. Heartbeats live in the owners' directory, which is
 * not watched, so they wake nobody; a timer at the next expiry re-checks the owners' heartbeats (one lstat each)
 * and publishes only the services whose live set changed. A full rescan every RESCAN_MS is the safety net; it
 * decodes again only files whose inode or times moved.
 */
export function watchDirectory(source: WatchSource, sink: DriverWatchSink): () => void {
  const {directory, reader, only} = source
  const services = new Map<string, Watched>()
  const watchers = new Map<string, FSWatcher>()
  let dirty = new Set<string>()
  let full = true
  /** The first scan reads files synchronously: nothing is served before its snapshot (files.ts). */
  let first = true
  let running = false
  let again = false
  let stopped = false
  const timers: Record<'absent' | 'expiry' | 'rescan' | 'settle', NodeJS.Timeout | undefined> = {
    absent: undefined,
    expiry: undefined,
    rescan: undefined,
    settle: undefined,
  }

  const fail = (error: unknown): void => sink.fail(error)
  const schedule = (): void => {
    if (stopped || timers.settle) return
    timers.settle = setTimeout(() => {
      timers.settle = undefined
      flush().catch(fail)
    }, SETTLE_MS)
  }

  const flush = async (): Promise<void> => {
    if (running) {
      again = true
      return
    }

    running = true
    try {
      for (let more = true; more; more = again) {
        again = false
        const beats = reader.beats()
        await (full ? rescan(beats) : readDirty(beats))
        armExpiry()
      }
    } finally {
      running = false
    }
  }

  const rescan = async (beats: OwnerBeats): Promise<void> => {
    full = false
    dirty = new Set()
    if (!(await directory.exists())) {
      unwatchAll()
      sink.publish([])
      timers.absent = setTimeout(() => {
        full = true
        flush().catch(fail)
      }, ABSENT_POLL_MS)
      return
    }

    watch('', directory.dir)
    const names = await source.serviceNames()
    const seen = new Set(names)
    for (const name of services.keys()) if (!seen.has(name)) forget(name)
    const all: ReadResult[][] = []
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < names.length) {
        if (stopped) return
        const i = next++
        const name = names[i] as string
        // watched before it is read: a file written between the read and the watch would be seen by neither
        watch(name, directory.servicePath(name))
        const read = await reader.serviceFiles(name, true, beats, first)
        if (read.state === 'missing') {
          forget(name)
          continue
        }

        all[i] = (await liveOf(name, read.records, beats)).records
      }
    }

    await Promise.all(Array.from({length: Math.min(RESCAN_CONCURRENCY, names.length)}, worker))
    if (stopped) return
    first = false
    sink.publish(all.flat())
    clearTimeout(timers.rescan)
    timers.rescan = setTimeout(() => {
      full = true
      schedule()
    }, RESCAN_MS)
  }

  const readDirty = async (beats: OwnerBeats): Promise<void> => {
    const batch = dirty
    dirty = new Set()
    for (const name of batch) {
      if (!services.has(name) && !(await isNewService(name))) continue
      watch(name, directory.servicePath(name))
      const read = await reader.serviceFiles(name)
      if (stopped) return
      if (read.state === 'missing') {
        const known = services.has(name)
        forget(name)
        if (known) sink.publish([], name)
        continue
      }

      sink.publish((await liveOf(name, read.records, beats)).records, name)
    }
  }

  /** Records a service's files and returns its live records now. */
  const liveOf = async (name: string, files: FileRecord[], beats: OwnerBeats): Promise<{records: ReadResult[]}> => {
    const read = await reader.live(files, beats)
    services.set(name, {files, live: signature(read.records), nextExpiry: read.nextExpiry})
    return read
  }

  /** An owner that stops heartbeating leaves no event: at the next expiry, look at the owners' heartbeats again. */
  const armExpiry = (): void => {
    clearTimeout(timers.expiry)
    let next = Infinity
    for (const watched of services.values()) next = Math.min(next, watched.nextExpiry)
    if (next === Infinity || stopped) return
    timers.expiry = setTimeout(() => expire().catch(fail), Math.max(0, next - Date.now()) + 20)
  }

  const expire = async (): Promise<void> => {
    if (running) {
      again = true
      return
    }

    running = true
    try {
      const beats = reader.beats()
      const now = Date.now()
      for (const [name, watched] of services) {
        const read = await reader.live(watched.files, beats, now)
        const live = signature(read.records)
        watched.nextExpiry = read.nextExpiry
        if (live === watched.live || stopped) continue
        watched.live = live
        sink.publish(read.records, name)
      }
    } finally {
      running = false
    }

    if (again) schedule()
    armExpiry()
  }

  /** A new entry of the registry: a service directory is read; anything else waits for the rescan to name it. */
  async function isNewService(name: string): Promise<boolean> {
    if (!isServiceName(name)) return false
    const state = await directory.serviceState(name)
    return state === 'ok'
  }

  function forget(name: string): void {
    services.delete(name)
    watchers.get(name)?.close()
    watchers.delete(name)
  }

  function unwatchAll(): void {
    for (const watcher of watchers.values()) watcher.close()
    watchers.clear()
    services.clear()
  }

  /** Watches one directory ('' for the registry itself); fs.watch follows links, so only a real directory. */
  function watch(name: string, dir: string): void {
    if (watchers.has(name) || stopped) return
    try {
      if (!lstatSync(dir).isDirectory()) return
      const watcher = fsWatch(dir, {persistent: true}, (_event, filename) =>
        name === '' ? onRegistryEntry(filename) : onServiceEntry(name, filename),
      )
      watcher.on('error', () => {
        watcher.close()
        watchers.delete(name)
        full = true
        schedule()
      })
      watchers.set(name, watcher)
    } catch (error) {
      if (!hasErrorCode(error, 'ENOENT')) sink.fail(directory.fsError(error))
    }
  }

  function onRegistryEntry(filename: string | null): void {
    if (filename === null) full = true
    else if (filename === OWNERS_DIR || filename === MARKER || filename.startsWith('.tmp-')) return
    else if (only !== undefined && filename !== only) return
    else dirty.add(filename)
    schedule()
  }

  function onServiceEntry(name: string, filename: string | null): void {
    // temporary files of an atomic write: the rename that follows names the instance file
    if (filename?.startsWith('.tmp-')) return
    dirty.add(name)
    schedule()
  }

  sink.status('connected', `directory ${directory.dir}`)
  flush().catch(fail)
  return () => {
    stopped = true
    for (const timer of Object.values(timers)) clearTimeout(timer)
    unwatchAll()
  }
}
