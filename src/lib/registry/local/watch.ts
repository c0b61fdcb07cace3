import {type FSWatcher, lstatSync, watch as fsWatch} from 'node:fs'

import {hasErrorCode} from '../../guards.js'
import type {DriverWatchSink, ReadResult} from '../core/driver.js'
import type {RegistryDirectory} from './directory.js'

/** What one pass over the watched services read, and when the earliest live instance expires. */
export interface WatchRead {
  services: string[]
  records: ReadResult[]
  nextExpiry: number
}

/**
 * The local backend's native watch: file-system events on the registry and its service directories, plus a
 * timer at the next heartbeat expiry (an owner that stops heartbeating leaves no event). Each pass publishes the
 * full state; the core diffs it.
 */
export function watchDirectory(
  directory: RegistryDirectory,
  read: () => Promise<WatchRead>,
  sink: DriverWatchSink,
): () => void {
  const watchers = new Map<string, FSWatcher>()
  let timer: NodeJS.Timeout | undefined
  let expiryTimer: NodeJS.Timeout | undefined
  let running = false
  let again = false
  let stopped = false

  const pass = async (): Promise<void> => {
    if (running) {
      again = true
      return
    }

    running = true
    try {
      for (let more = true; more; more = again) {
        again = false
        const state = await read()
        for (const name of state.services) watchDir(directory.servicePath(name))
        if (stopped) return
        sink.publish(state.records)
        clearTimeout(expiryTimer)
        // an owner that stops heartbeating leaves no event: wake up when its TTL runs out
        if (state.nextExpiry !== Infinity) {
          expiryTimer = setTimeout(schedule, Math.max(0, state.nextExpiry - Date.now()) + 20)
        }
      }
    } catch (error) {
      sink.fail(error)
    } finally {
      running = false
    }
  }

  function schedule(): void {
    if (stopped) return
    clearTimeout(timer)
    timer = setTimeout(pass, 5)
  }

  function watchDir(dir: string): void {
    if (watchers.has(dir) || stopped) return
    try {
      // fs.watch follows links: watch only a real directory (the parent's watcher sees one appear)
      if (!lstatSync(dir).isDirectory()) return
      const watcher = fsWatch(dir, {persistent: true}, schedule)
      watcher.on('error', () => {
        watcher.close()
        watchers.delete(dir)
        schedule()
      })
      watchers.set(dir, watcher)
    } catch (error) {
      if (!hasErrorCode(error, 'ENOENT')) sink.fail(directory.fsError(error))
    }
  }

  /** A read never creates the directory: until a write does, the state is empty and svc looks now and then. */
  let announced = false
  const start = async (): Promise<void> => {
    if (stopped) return
    const exists = await directory.exists()
    if (!announced) {
      announced = true
      sink.status('connected', `directory ${directory.dir}`)
    }

    if (!exists) {
      sink.publish([])
      timer = setTimeout(() => start().catch((error: unknown) => sink.fail(error)), 500)
      return
    }

    watchDir(directory.dir)
    await pass()
  }

  start().catch((error: unknown) => sink.fail(error))
  return () => {
    stopped = true
    clearTimeout(timer)
    clearTimeout(expiryTimer)
    for (const watcher of watchers.values()) watcher.close()
    watchers.clear()
  }
}
