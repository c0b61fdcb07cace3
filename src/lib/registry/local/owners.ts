import {lstat, mkdir, readdir, unlink} from 'node:fs/promises'
import path from 'node:path'

import {hasErrorCode} from '../../guards.js'
import type {Owner} from '../core/driver.js'
import {OWNERS_DIR} from './directory.js'
import {touch, writeAtomic} from './files.js'

/** Owner heartbeats older than this are a dead process's leftovers; a write removes them. */
const STALE_OWNER_MS = 24 * 60 * 60 * 1000

/** The heartbeat file of an owner: one per process, whatever the number of its instances. */
export function ownerFileName(owner: Owner): string {
  return encodeURIComponent(`${owner.host}-${owner.pid}-${owner.nonce}`).replace(/^\./, '%2E')
}

/**
 * One process's liveness in the local registry: `.svc@owners/<host>-<pid>-<nonce>`, touched at every refresh. Instance
 * files are written once and never touched, so heartbeats wake no watcher (the owners directory is not watched).
 * Refreshes coalesce: one touch in flight, its result shared by every binding that asks within half its period.
 * It is left behind on close: an instance kept on close expires a TTL after the last beat, as before.
 */
export class OwnerHeartbeat {
  readonly file: string
  private inFlight?: Promise<void>
  private doneAt = 0

  constructor(
    private readonly registryDir: string,
    owner: Owner,
  ) {
    this.file = path.join(registryDir, OWNERS_DIR, ownerFileName(owner))
  }

  /** Touches the heartbeat unless a touch finished less than `maxAgeMs` ago. */
  beat(maxAgeMs: number): Promise<void> {
    if (this.inFlight) return this.inFlight
    if (Date.now() - this.doneAt < maxAgeMs) return Promise.resolve()
    this.inFlight = this.touchOrCreate().finally(() => {
      this.inFlight = undefined
    })
    return this.inFlight
  }

  private async touchOrCreate(): Promise<void> {
    try {
      await touch(this.file)
    } catch (error) {
      if (!hasErrorCode(error, 'ENOENT')) throw error
      await this.create()
    }

    this.doneAt = Date.now()
  }

  private async create(): Promise<void> {
    const dir = path.dirname(this.file)
    await mkdir(dir, {mode: 0o700}).catch((error: unknown) => {
      if (!hasErrorCode(error, 'EEXIST')) throw error
    })
    const info = await lstat(dir)
    if (!info.isDirectory()) throw Object.assign(new Error(`${dir} is not a directory`), {code: 'ENOTDIR'})
    await writeAtomic(this.file, Buffer.from('{}\n'))
    await sweepOwners(dir)
  }
}

/** Removes heartbeats of owners dead for a day: a process that was killed leaves its one file behind. */
async function sweepOwners(dir: string): Promise<void> {
  const now = Date.now()
  for (const name of await readdir(dir).catch(() => [])) {
    if (name.startsWith('.')) continue
    const file = path.join(dir, name)
    const info = await lstat(file).catch(() => undefined)
    if (info?.isFile() && now - info.mtimeMs > STALE_OWNER_MS) await unlink(file).catch(() => {})
  }
}

/** How long a reader trusts a heartbeat it looked at: a long pass looks again rather than expire live owners. */
const BEAT_FRESH_MS = 100

/** A reader's view of owner heartbeats: one lstat per owner per pass (or per 100 ms), never following a link. */
export class OwnerBeats {
  private readonly seen = new Map<string, {at: number; beat: Promise<number | undefined>}>()

  constructor(private readonly registryDir: string) {}

  /** The owner's last heartbeat (ms), or undefined when it has none (an older svc's owner, or gone). */
  beat(owner: string): Promise<number | undefined> {
    const now = Date.now()
    const found = this.seen.get(owner)
    if (found && now - found.at < BEAT_FRESH_MS) return found.beat
    const beat = lstat(path.join(this.registryDir, OWNERS_DIR, owner)).then(
      (info) => (info.isFile() && info.uid === (process.getuid?.() ?? info.uid) ? info.mtimeMs : undefined),
      () => undefined,
    )
    this.seen.set(owner, {at: now, beat})
    return beat
  }
}
