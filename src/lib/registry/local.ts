/* eslint-disable no-bitwise -- open flags and file modes are bit masks */
import {randomBytes} from 'node:crypto'
import {constants, type FSWatcher, lstatSync, type Stats, watch as fsWatch} from 'node:fs'
import {chmod, type FileHandle, lstat, mkdir, open, readdir, rename, rm, unlink} from 'node:fs/promises'
import {hostname} from 'node:os'
import path from 'node:path'

import {errorMessage, UserError} from '../errors.js'
import {hasErrorCode, isRecord} from '../guards.js'
import {sortInstances} from './diff.js'
import {type BackendOptions, refreshPeriod} from './options.js'
import type {BackendSpec} from './spec.js'
import {
  type ClusterInfo,
  type Health,
  HEALTH_VALUES,
  type InstanceChanges,
  type InstanceInput,
  type RegisterOptions,
  type Registry,
  type RegistrationHandle,
  type ServiceInstance,
  type ServiceSummary,
  type WatchEvent,
  type WatchOptions,
} from './types.js'
import {applyChanges, isInstanceSource, toInstance, validateServiceName} from './validate.js'
import {snapshotWatch, type WatchSink} from './watch.js'

export const LOCAL_DEFAULT_TTL_MS = 15_000
/** Instance files are a few hundred bytes; anything above this is not one of svc's and is not read. */
export const MAX_INSTANCE_FILE_BYTES = 1024 * 1024

// O_NOFOLLOW makes open fail on a symbolic link; O_NONBLOCK keeps a planted FIFO from blocking the open.
const NOFOLLOW = constants.O_NOFOLLOW ?? 0
const READ_FLAGS = constants.O_RDONLY | NOFOLLOW | (constants.O_NONBLOCK ?? 0)
const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | NOFOLLOW

/** What one instance file holds; the file's mtime is the owner's last heartbeat. */
interface InstanceFile {
  instance: ServiceInstance
  ttlMs: number
  owner: {pid: number; host: string}
}

type LocalSpec = Extract<BackendSpec, {kind: 'local'}>

/** A readable instance file, or why it is not one. */
type ReadResult = {data: InstanceFile; mtimeMs: number} | {skip: string} | undefined

/**
 * The embedded registry: a directory shared by the processes of one machine, one JSON file per instance,
 * written atomically (temporary file + rename). Owners heartbeat by touching their file; readers ignore
 * files whose heartbeat is older than their TTL and remove them. Directories are 0700 and files 0600; symbolic
 * links are never followed, and a file that is not a valid instance of svc's is skipped with one warning and
 * never removed.
 */
export class LocalRegistry implements Registry {
  readonly kind = 'local'
  readonly nativeChecks = false
  readonly description: string
  private readonly dir: string
  private readonly options: BackendOptions
  private readonly handles = new Set<LocalHandle>()
  /** Entries already reported as skipped, with the reason, so that each is reported once and not on every read. */
  private readonly warned = new Map<string, string>()
  private ready?: Promise<void>
  private checked = false

  constructor(spec: LocalSpec, options: BackendOptions) {
    this.dir = spec.dir
    this.description = `local://${spec.dir}`
    this.options = options
  }

  async ping(): Promise<void> {
    await this.ensureDir()
  }

  async register(input: InstanceInput, opts: RegisterOptions = {}): Promise<RegistrationHandle> {
    const instance = toInstance(input)
    await this.ensureDir()
    const ttlMs = opts.ttlMs ?? LOCAL_DEFAULT_TTL_MS
    const handle = new LocalHandle(this, instance, ttlMs, opts, () => this.handles.delete(handle))
    await handle.write()
    handle.start()
    this.handles.add(handle)
    return handle
  }

  async deregister(service: string, id: string): Promise<boolean> {
    validateServiceName(service)
    if (!(await this.checkDir())) return false
    // unlink would follow a symbolic link in place of the service's directory
    const state = await this.serviceDirState(service)
    if (state === 'missing') return false
    if (state !== 'ok') throw this.refused(path.join(this.dir, service), state)
    try {
      await unlink(this.instancePath(service, id))
      return true
    } catch (error) {
      if (hasErrorCode(error, 'ENOENT')) return false
      throw this.fsError(error)
    }
  }

  async listServices(): Promise<ServiceSummary[]> {
    const summaries: ServiceSummary[] = []
    for (const service of await this.serviceNames()) {
      const instances = await this.listInstances(service)
      if (instances.length === 0) continue
      summaries.push({
        name: service,
        instances: instances.length,
        passing: instances.filter((i) => i.health === 'passing').length,
      })
    }

    return summaries
  }

  async listInstances(service: string): Promise<ServiceInstance[]> {
    validateServiceName(service)
    const {instances} = await this.readService(service)
    return sortInstances(instances)
  }

  watch(service?: string, opts: WatchOptions = {}): AsyncIterableIterator<WatchEvent> {
    if (service !== undefined) validateServiceName(service)
    return snapshotWatch(opts, undefined, (sink) => this.watchLoop(sink, service))
  }

  async cluster(): Promise<ClusterInfo> {
    await this.ensureDir()
    return {backend: 'local', members: [{name: hostname(), address: this.dir, role: 'standalone', reachable: true}]}
  }

  async close(): Promise<void> {
    await Promise.all([...this.handles].map((h) => h.close()))
  }

  instancePath(service: string, id: string): string {
    return path.join(this.dir, service, instanceFileName(id))
  }

  /**
   * Writes a file atomically: readers see the old or the new content, never a partial one. The temporary file is
   * created exclusively, without following links, at 0600 whatever the umask; the rename replaces whatever is at
   * `file` (a symbolic link included) instead of writing through it.
   */
  async writeAtomic(file: string, content: string): Promise<void> {
    const bytes = Buffer.from(content)
    if (bytes.length > MAX_INSTANCE_FILE_BYTES) {
      throw new UserError(
        `the instance is ${bytes.length} bytes as JSON, above the local registry's ${MAX_INSTANCE_FILE_BYTES}`,
        'register fewer or shorter tags and meta values',
      )
    }

    await this.ensureDir()
    await this.ensureServiceDir(path.dirname(file))
    const tmp = path.join(path.dirname(file), `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`)
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
      throw this.fsError(error)
    }
  }

  /** Refreshes the heartbeat of an instance file without following a link; ENOENT when it is gone, ELOOP when it is not a plain file. */
  async touch(file: string): Promise<void> {
    const handle = await open(file, READ_FLAGS)
    try {
      if (!(await handle.stat()).isFile()) throw Object.assign(new Error(`${file} is not a file`), {code: 'ELOOP'})
      const now = new Date()
      await handle.utimes(now, now)
    } finally {
      await handle.close()
    }
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

  /** Creates the registry directory (and its missing parents) at 0700, or checks the one that is there. */
  private ensureDir(): Promise<void> {
    this.ready ??= this.createDir().catch((error: unknown) => {
      this.ready = undefined
      throw error
    })
    return this.ready
  }

  private async createDir(): Promise<void> {
    if (await this.checkDir()) return
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

    if (!(await this.checkDir())) throw new Error(`${this.dir} vanished after it was created`)
  }

  /**
   * False when the registry directory does not exist; throws when it must not be used (a symbolic link, not a
   * directory, someone else's, or a shared sticky directory such as /tmp).
   */
  private async checkDir(): Promise<boolean> {
    if (this.checked) return true
    let info: Stats
    try {
      info = await lstat(this.dir)
    } catch (error) {
      if (hasErrorCode(error, 'ENOENT')) return false
      throw this.fsError(error)
    }

    const why = foreignDirectory(info)
    if (why) throw this.refused(this.dir, why)
    // a looser mode on a directory of our own is an accident (an old umask or tool): close it; others' are refused above
    if ((info.mode & 0o077) !== 0) {
      try {
        await chmod(this.dir, 0o700)
      } catch (error) {
        throw this.fsError(error)
      }

      this.options.log(
        `tightened ${this.dir} from mode ${octal(info.mode)} to 0700: the registry is private to its owner`,
      )
    }

    this.checked = true
    return true
  }

  private refused(dir: string, why: string): UserError {
    return new UserError(
      `refusing the local registry directory ${dir}: it ${why}`,
      'use a directory of your own: set SVC_HOME, or --backend local:///path/you/own',
    )
  }

  /** 'ok' for a real directory of ours, 'missing', or why it must not be used. */
  private async serviceDirState(service: string): Promise<string> {
    try {
      const why = foreignDirectory(await lstat(path.join(this.dir, service)), {sticky: false})
      return why ?? 'ok'
    } catch (error) {
      if (hasErrorCode(error, 'ENOENT') || hasErrorCode(error, 'ENOTDIR')) return 'missing'
      throw this.fsError(error)
    }
  }

  private async ensureServiceDir(dir: string, again = true): Promise<void> {
    const state = await this.serviceDirState(path.basename(dir))
    if (state === 'ok') return
    if (state !== 'missing') throw this.refused(dir, state)
    try {
      await mkdir(dir, {mode: 0o700})
    } catch (error) {
      if (hasErrorCode(error, 'ENOENT') && again) {
        // the registry directory was removed under us: create it again (once), as the first write did
        this.ready = undefined
        this.checked = false
        await this.ensureDir()
        return this.ensureServiceDir(dir, false)
      }

      if (!hasErrorCode(error, 'EEXIST')) throw this.fsError(error)
    }

    const after = await this.serviceDirState(path.basename(dir))
    if (after !== 'ok') throw this.refused(dir, after === 'missing' ? 'vanished after it was created' : after)
    await chmod(dir, 0o700).catch((error: unknown) => {
      throw this.fsError(error)
    })
  }

  /** Reports a skipped entry once per reason, not on every read. */
  private skip(entry: string, why: string): void {
    if (this.warned.get(entry) === why) return
    this.warned.set(entry, why)
    this.options.log(`skipping ${entry}: ${why}`)
  }

  private async serviceNames(): Promise<string[]> {
    if (!(await this.checkDir())) return []
    let entries
    try {
      entries = await readdir(this.dir, {withFileTypes: true})
    } catch (error) {
      if (hasErrorCode(error, 'ENOENT')) return []
      throw this.fsError(error)
    }

    const names: string[] = []
    for (const e of entries) {
      const entry = path.join(this.dir, e.name)
      if (e.isSymbolicLink()) this.skip(entry, 'it is a symbolic link, which svc does not follow')
      else if (!e.isDirectory()) continue
      else if (isServiceName(e.name)) names.push(e.name)
      else this.skip(entry, 'its name is not a valid service name')
    }

    return names
  }

  /** Live instances of a service, and when the earliest of them expires. Expired files of svc's are removed. */
  private async readService(service: string): Promise<{instances: ServiceInstance[]; nextExpiry: number}> {
    const none = {instances: [], nextExpiry: Infinity}
    if (!(await this.checkDir())) return none
    const dir = path.join(this.dir, service)
    const state = await this.serviceDirState(service)
    if (state === 'missing') return none
    if (state !== 'ok') {
      this.skip(dir, `it ${state}`)
      return none
    }

    let entries
    try {
      entries = await readdir(dir, {withFileTypes: true})
    } catch (error) {
      if (hasErrorCode(error, 'ENOENT') || hasErrorCode(error, 'ENOTDIR')) return none
      throw this.fsError(error)
    }

    const instances: ServiceInstance[] = []
    let nextExpiry = Infinity
    const now = Date.now()
    for (const entry of entries) {
      const {name} = entry
      if (!name.endsWith('.json') || name.startsWith('.')) continue
      const file = path.join(dir, name)
      const record = entry.isSymbolicLink()
        ? {skip: 'it is a symbolic link, which svc does not follow'}
        : await this.readInstanceFile(file, service)
      if (record === undefined) continue
      if ('skip' in record) {
        this.skip(file, record.skip)
        continue
      }

      this.warned.delete(file)
      const expiresAt = record.mtimeMs + record.data.ttlMs
      if (expiresAt < now) {
        await this.removeIfExpired(file, service)
        continue
      }

      nextExpiry = Math.min(nextExpiry, expiresAt)
      instances.push(record.data.instance)
    }

    return {instances, nextExpiry}
  }

  /** Reads one instance file without following links or blocking; undefined when it is gone. */
  private async readInstanceFile(file: string, service: string): Promise<ReadResult> {
    let handle: FileHandle
    try {
      handle = await open(file, READ_FLAGS)
    } catch (error) {
      if (hasErrorCode(error, 'ENOENT')) return undefined
      if (hasErrorCode(error, 'ELOOP') || hasErrorCode(error, 'EMLINK')) {
        return {skip: 'it is a symbolic link, which svc does not follow'}
      }

      return {skip: `it cannot be read (${errorMessage(error)})`}
    }

    try {
      const info = await handle.stat()
      if (!info.isFile()) return {skip: 'it is not a regular file'}
      const uid = process.getuid?.()
      if (uid !== undefined && info.uid !== uid) return {skip: `it belongs to uid ${info.uid}, not to uid ${uid}`}
      if (info.size > MAX_INSTANCE_FILE_BYTES) return {skip: `it is ${info.size} bytes, too large for an instance file`}
      const content = await readBounded(handle, info.size, MAX_INSTANCE_FILE_BYTES)
      if (content === undefined) return {skip: 'it is too large for an instance file'}
      const parsed = parseInstanceFile(content, service, path.basename(file))
      if (typeof parsed === 'string') return {skip: parsed}
      return {data: parsed, mtimeMs: info.mtimeMs}
    } catch (error) {
      return {skip: `it cannot be read (${errorMessage(error)})`}
    } finally {
      await handle.close().catch(() => {})
    }
  }

  /** Removes an expired instance file of svc's unless its owner heartbeated in the meantime. */
  private async removeIfExpired(file: string, service: string): Promise<void> {
    try {
      const record = await this.readInstanceFile(file, service)
      // unlink removes a link that replaced the file since, never what it points to
      if (record && 'data' in record && record.mtimeMs + record.data.ttlMs < Date.now()) await unlink(file)
    } catch {
      // another reader removed it first, or it cannot be removed: either way it is not listed
    }
  }

  private watchLoop(sink: WatchSink, service: string | undefined): () => void {
    const watchers = new Map<string, FSWatcher>()
    let timer: NodeJS.Timeout | undefined
    let expiryTimer: NodeJS.Timeout | undefined
    let running = false
    let again = false
    let stopped = false

    const refresh = async (): Promise<void> => {
      if (running) {
        again = true
        return
      }

      running = true
      try {
        for (;;) {
          again = false
          const services = service === undefined ? await this.serviceNames() : [service]
          for (const name of services) watchDir(path.join(this.dir, name))
          const all: ServiceInstance[] = []
          let nextExpiry = Infinity
          for (const name of services) {
            const result = await this.readService(name)
            all.push(...result.instances)
            nextExpiry = Math.min(nextExpiry, result.nextExpiry)
          }

          if (stopped) return
          sink.publish(all)
          clearTimeout(expiryTimer)
          if (nextExpiry !== Infinity) {
            // an owner that stops heartbeating leaves no file-system event: wake up when its TTL runs out
            expiryTimer = setTimeout(schedule, Math.max(0, nextExpiry - Date.now()) + 20)
          }

          if (!again || stopped) break
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
      timer = setTimeout(refresh, 5)
    }

    const watchDir = (dir: string): void => {
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
        if (!hasErrorCode(error, 'ENOENT')) sink.fail(this.fsError(error))
      }
    }

    this.ensureDir().then(
      () => {
        watchDir(this.dir)
        sink.status('connected', `directory ${this.dir}`)
        return refresh()
      },
      (error: unknown) => sink.fail(error),
    )

    return () => {
      stopped = true
      clearTimeout(timer)
      clearTimeout(expiryTimer)
      for (const watcher of watchers.values()) watcher.close()
      watchers.clear()
    }
  }
}

class LocalHandle implements RegistrationHandle {
  instance: ServiceInstance
  private readonly registry: LocalRegistry
  private readonly ttlMs: number
  private readonly opts: RegisterOptions
  private readonly onClosed: () => void
  private readonly file: string
  private timer?: NodeJS.Timeout
  private closed = false
  private lost = false

  constructor(
    registry: LocalRegistry,
    instance: ServiceInstance,
    ttlMs: number,
    opts: RegisterOptions,
    onClosed: () => void,
  ) {
    this.registry = registry
    this.instance = instance
    this.ttlMs = ttlMs
    this.opts = opts
    this.onClosed = onClosed
    this.file = registry.instancePath(instance.service, instance.id)
  }

  write(): Promise<void> {
    const data: InstanceFile = {instance: this.instance, ttlMs: this.ttlMs, owner: {pid: process.pid, host: hostname()}}
    return this.registry.writeAtomic(this.file, JSON.stringify(data, null, 2) + '\n')
  }

  start(): void {
    const every = refreshPeriod(this.ttlMs, this.opts.refreshMs, 200)
    this.timer = setInterval(() => this.heartbeat(), every)
  }

  async setHealth(health: Health): Promise<void> {
    if (this.instance.health === health) return
    this.instance = {...this.instance, health}
    if (!this.closed) await this.write()
  }

  async update(changes: InstanceChanges): Promise<void> {
    this.instance = applyChanges(this.instance, changes)
    if (!this.closed) await this.write()
  }

  async close(opts: {deregister?: boolean} = {}): Promise<void> {
    if (this.closed) return
    this.closed = true
    clearInterval(this.timer)
    this.onClosed()
    if (opts.deregister !== false) await this.registry.deregister(this.instance.service, this.instance.id)
  }

  private async heartbeat(): Promise<void> {
    if (this.closed) return
    try {
      try {
        await this.registry.touch(this.file)
      } catch (error) {
        // something replaced the file with a link or a non-file: put the instance back (the rename replaces it)
        if (!hasErrorCode(error, 'ELOOP') && !hasErrorCode(error, 'EMLINK')) throw error
        await this.write()
      }

      if (this.lost) {
        this.lost = false
        this.opts.onStateChange?.('restored', 'heartbeats reach the registry again')
      }
    } catch (error) {
      if (this.lost) return
      this.lost = true
      const why = hasErrorCode(error, 'ENOENT') ? 'the instance was removed from the registry' : String(error)
      this.opts.onStateChange?.('lost', why)
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

/** The file of an instance: its id, URI-encoded, with a leading dot encoded too (dot files are temporary files). */
export function instanceFileName(id: string): string {
  return `${encodeURIComponent(id).replace(/^\./, '%2E')}.json`
}

function octal(mode: number): string {
  return '0' + (mode & 0o7777).toString(8)
}

function isServiceName(name: string): boolean {
  try {
    validateServiceName(name)
    return true
  } catch {
    return false
  }
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

    const {bytesRead} = await handle.read(buffer, length, buffer.length - length, length)
    if (bytesRead === 0) break
    length += bytesRead
  }

  return length > max ? undefined : buffer.subarray(0, length).toString('utf8')
}

/**
 * The instance file, fully validated, when it is one of svc's own: the shape svc writes, every field valid, and the
 * file named after the instance in its service's directory (so a copy cannot pose as another instance). Otherwise
 * why not, in a few words.
 */
export function parseInstanceFile(content: string, service: string, fileName: string): InstanceFile | string {
  let data: unknown
  try {
    data = JSON.parse(content)
  } catch {
    return content.trim() === '' ? 'it is empty (an interrupted write?)' : 'it is not JSON'
  }

  if (!isRecord(data) || !isRecord(data.instance)) return 'it is not an svc instance file'
  const {ttlMs, owner, instance: raw} = data
  if (typeof ttlMs !== 'number' || !Number.isFinite(ttlMs) || ttlMs <= 0) return 'it has no valid ttlMs'
  const {source, health, tags, meta} = raw
  if (
    typeof raw.service !== 'string' ||
    typeof raw.id !== 'string' ||
    typeof raw.address !== 'string' ||
    typeof raw.port !== 'number' ||
    !Array.isArray(tags) ||
    !tags.every((t) => typeof t === 'string') ||
    !isRecord(meta) ||
    !Object.values(meta).every((v) => typeof v === 'string') ||
    typeof health !== 'string' ||
    !(HEALTH_VALUES as readonly string[]).includes(health) ||
    (source !== undefined && !isInstanceSource(source))
  ) {
    return 'it is not an svc instance file'
  }

  let instance: ServiceInstance
  try {
    instance = toInstance({
      service: raw.service,
      id: raw.id,
      address: raw.address,
      port: raw.port,
      tags: tags as string[],
      meta: meta as Record<string, string>,
      health: health as Health,
      ...(source === undefined
        ? {}
        : {
            source: {
              containerId: source.containerId,
              containerName: source.containerName,
              image: source.image,
              host: source.host,
            },
          }),
    })
  } catch (error) {
    return `it holds an invalid instance (${errorMessage(error)})`
  }

  if (instance.service !== service || instanceFileName(instance.id) !== fileName) {
    return `it holds instance ${instance.id} of service ${instance.service}, which belongs in another file`
  }

  const ownerOk = isRecord(owner) && typeof owner.pid === 'number' && typeof owner.host === 'string'
  return {instance, ttlMs, owner: ownerOk ? {pid: owner.pid as number, host: owner.host as string} : {pid: 0, host: ''}}
}
