/* eslint-disable no-bitwise -- open flags are bit masks */
import {closeSync, constants, fstatSync, openSync, readSync, type Stats} from 'node:fs'
import {type FileHandle, open, rename, rm} from 'node:fs/promises'
import path from 'node:path'

import {errorMessage} from '../../errors.js'
import {hasErrorCode} from '../../guards.js'
import {randomHex} from '../../random-hex.js'

/** Instance files are a few hundred bytes; anything above this is not one of svc's and is not read. */
export const MAX_INSTANCE_FILE_BYTES = 1024 * 1024

// O_NOFOLLOW makes open fail on a symbolic link; O_NONBLOCK keeps a planted FIFO from blocking the open.
const NOFOLLOW = constants.O_NOFOLLOW ?? 0
const READ_FLAGS = constants.O_RDONLY | NOFOLLOW | (constants.O_NONBLOCK ?? 0)
const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | NOFOLLOW

const LINK = 'it is a symbolic link, which svc does not follow'

/** The file of an instance: its id, URI-encoded, with a leading dot encoded too (dot files are temporary files). */
export function instanceFileName(id: string): string {
  return `${encodeURIComponent(id).replace(/^\./, '%2E')}.json`
}

/** What an instance file holds as text, with its mtime (the owner's last heartbeat), or why it is not readable. */
type FileRead = {content: string; mtimeMs: number; stat: FileStamp} | {skip: string; notFile?: true} | undefined

/** What tells a file's content has not changed since it was read (instance files are replaced by a rename). */
export interface FileStamp {
  ino: number
  size: number
  mtimeMs: number
  ctimeMs: number
}

/**
 * Writes a file atomically: readers see the old or the new content, never a partial one. The temporary file is
 * created exclusively, without following links, at 0600 whatever the umask; the rename replaces whatever is at
 * `file` (a symbolic link included) instead of writing through it.
 */
export async function writeAtomic(file: string, bytes: Buffer): Promise<void> {
  const tmp = path.join(path.dirname(file), `.tmp-${process.pid}-${randomHex(4)}`)
  let handle: FileHandle | undefined
  try {
    handle = await open(tmp, CREATE_FLAGS, 0o600)
    await handle.chmod(0o600)
    await handle.writeFile(bytes)
    await handle.close()
    handle = undefined
    await rename(tmp, file)
  } catch (error) {
    await handle?.close().catch(() => {})
    await rm(tmp, {force: true})
    throw error
  }
}

/** Refreshes a heartbeat without following a link; ENOENT when the file is gone, ELOOP when it is not a plain file. */
export async function touch(file: string): Promise<void> {
  const handle = await open(file, READ_FLAGS)
  try {
    if (!(await handle.stat()).isFile()) throw Object.assign(new Error(`${file} is not a file`), {code: 'ELOOP'})
    const now = new Date()
    await handle.utimes(now, now)
  } finally {
    await handle.close()
  }
}

/** Reads one instance file without following links or blocking; undefined when it is gone. */
export async function readInstanceFile(file: string): Promise<FileRead> {
  let handle: FileHandle
  try {
    handle = await open(file, READ_FLAGS)
  } catch (error) {
    if (hasErrorCode(error, 'ENOENT')) return undefined
    if (hasErrorCode(error, 'ELOOP') || hasErrorCode(error, 'EMLINK')) return {skip: LINK, notFile: true}
    return {skip: `it cannot be read (${errorMessage(error)})`}
  }

  try {
    const info = await handle.stat()
    const refused = refusal(info)
    if (refused) return refused
    const content = await readBounded(handle, info.size, MAX_INSTANCE_FILE_BYTES)
    return read(content, info)
  } catch (error) {
    return {skip: `it cannot be read (${errorMessage(error)})`}
  } finally {
    await handle.close().catch(() => {})
  }
}

/**
 * readInstanceFile without the thread pool's round trips: for a watch's first snapshot, when nothing is served
 * yet and thousands of small files are read (four system calls each, instead of four hand-offs each).
 */
export function readInstanceFileSync(file: string): FileRead {
  let fd: number
  try {
    fd = openSync(file, READ_FLAGS)
  } catch (error) {
    if (hasErrorCode(error, 'ENOENT')) return undefined
    if (hasErrorCode(error, 'ELOOP') || hasErrorCode(error, 'EMLINK')) return {skip: LINK, notFile: true}
    return {skip: `it cannot be read (${errorMessage(error)})`}
  }

  try {
    const info = fstatSync(fd)
    const refused = refusal(info)
    if (refused) return refused
    let buffer = Buffer.alloc(info.size + 1)
    let length = 0
    for (;;) {
      if (length === buffer.length) {
        if (length > MAX_INSTANCE_FILE_BYTES) break
        const bigger = Buffer.alloc(Math.min(buffer.length * 2, MAX_INSTANCE_FILE_BYTES + 1))
        buffer.copy(bigger)
        buffer = bigger
      }

      const wanted = buffer.length - length
      const n = readSync(fd, buffer, length, wanted, length)
      length += n
      if (n < wanted) break
    }

    return read(length > MAX_INSTANCE_FILE_BYTES ? undefined : buffer.subarray(0, length).toString('utf8'), info)
  } catch (error) {
    return {skip: `it cannot be read (${errorMessage(error)})`}
  } finally {
    closeSync(fd)
  }
}

/** Why an opened file is not read as an instance file, or undefined when it may be. */
function refusal(info: Stats): FileRead {
  if (!info.isFile()) return {skip: 'it is not a regular file', notFile: true}
  const uid = process.getuid?.()
  if (uid !== undefined && info.uid !== uid) return {skip: `it belongs to uid ${info.uid}, not to uid ${uid}`}
  if (info.size > MAX_INSTANCE_FILE_BYTES) return {skip: `it is ${info.size} bytes, too large for an instance file`}
  return undefined
}

function read(content: string | undefined, info: Stats): FileRead {
  if (content === undefined) return {skip: 'it is too large for an instance file'}
  const stat = {ino: info.ino, size: info.size, mtimeMs: info.mtimeMs, ctimeMs: info.ctimeMs}
  return {content, mtimeMs: info.mtimeMs, stat}
}

/** The file's content as UTF-8, or undefined when it holds more than `max` bytes (it may grow while read). */
async function readBounded(handle: FileHandle, sizeHint: number, max: number): Promise<string | undefined> {
  let buffer = Buffer.alloc(Math.min(sizeHint, max) + 1)
  let length = 0
  for (;;) {
    if (length === buffer.length) {
      if (length > max) return undefined
      const bigger = Buffer.alloc(Math.min(buffer.length * 2, max + 1))
      buffer.copy(bigger)
      buffer = bigger
    }

    const wanted = buffer.length - length
    const {bytesRead} = await handle.read(buffer, length, wanted, length)
    length += bytesRead
    // a short read of a regular file is its end: no second read to learn it
    if (bytesRead < wanted) break
  }

  return length > max ? undefined : buffer.subarray(0, length).toString('utf8')
}
