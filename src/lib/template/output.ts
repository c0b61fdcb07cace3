import {randomBytes} from 'node:crypto'
import {type FileHandle, open, readFile, realpath, rename, rm, stat} from 'node:fs/promises'
import path from 'node:path'

import {hasErrorCode} from '../guards.js'

/** A new output file's mode, as consul-template creates them. */
const NEW_FILE_MODE = 0o644

/** The file an output path names: a symbolic link's target (the link stays), else the path itself. */
async function target(file: string): Promise<string> {
  try {
    return await realpath(file)
  } catch (error) {
    if (hasErrorCode(error, 'ENOENT')) return file
    throw error
  }
}

/** The bytes the output holds now; undefined when it does not exist yet. */
export async function currentOutput(file: string): Promise<Buffer | undefined> {
  try {
    return await readFile(file)
  } catch (error) {
    if (hasErrorCode(error, 'ENOENT')) return undefined
    throw error
  }
}

/**
 * Replaces the output atomically (readers such as `nginx -s reload` see the old or the new file, never half of
 * one): a temporary file in the same directory, the target's mode (and owner, as root), then a rename.
 */
export async function writeOutput(file: string, bytes: Buffer): Promise<void> {
  const real = await target(file)
  const before = await stat(real).catch((error: unknown) => {
    if (hasErrorCode(error, 'ENOENT')) return undefined
    throw error
  })
  // eslint-disable-next-line no-bitwise -- the permission bits of st_mode
  const mode = before ? before.mode & 0o7777 : NEW_FILE_MODE
  const tmp = path.join(
    path.dirname(real),
    `.${path.basename(real)}.svc-${process.pid}-${randomBytes(4).toString('hex')}`,
  )
  let handle: FileHandle | undefined
  try {
    handle = await open(tmp, 'wx', mode)
    // the umask narrowed the mode open() used
    await handle.chmod(mode)
    if (before && process.getuid?.() === 0) await handle.chown(before.uid, before.gid)
    await handle.writeFile(bytes)
    await handle.sync()
    await handle.close()
    handle = undefined
    await rename(tmp, real)
  } catch (error) {
    await handle?.close().catch(() => {})
    await rm(tmp, {force: true})
    throw error
  }
}
