import {mkdirSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {setTimeout as sleep} from 'node:timers/promises'

/**
 * Takes a lock shared by every test process: a directory made atomically, naming its owner's pid. A lock whose
 * owner died is taken over. Resolves to the function that releases it.
 */
export async function acquireLock(lock: string, what: string, timeoutMs = 120_000): Promise<() => void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      mkdirSync(lock)
      writeFileSync(`${lock}/owner`, String(process.pid))
      return () => rmSync(lock, {recursive: true, force: true})
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      if (lockIsStale(lock)) {
        rmSync(lock, {recursive: true, force: true})
        continue
      }

      if (Date.now() >= deadline) throw new Error(`waited ${timeoutMs} ms for ${what}`)
      await sleep(100)
    }
  }
}

/** Runs `fn` while holding the lock. */
export async function withLock<T>(lock: string, what: string, fn: () => Promise<T>, timeoutMs?: number): Promise<T> {
  const release = await acquireLock(lock, what, timeoutMs)
  try {
    return await fn()
  } finally {
    release()
  }
}

function lockIsStale(lock: string): boolean {
  let owner: number
  try {
    owner = Number(readFileSync(`${lock}/owner`, 'utf8'))
  } catch {
    // being created right now, or its creator died before naming itself
    try {
      return Date.now() - statSync(lock).mtimeMs > 5000
    } catch {
      return false
    }
  }

  try {
    process.kill(owner, 0)
    return false
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH'
  }
}
