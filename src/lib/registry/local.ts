import {randomBytes} from 'node:crypto'
import {type FSWatcher, watch as fsWatch} from 'node:fs'
import {mkdir, readdir, readFile, rename, rm, stat, unlink, utimes, writeFile} from 'node:fs/promises'
import {hostname} from 'node:os'
import path from 'node:path'

import {UserError} from '../errors.js'
import {hasErrorCode} from '../guards.js'
import {sortInstances} from './diff.js'
import {type BackendOptions, refreshPeriod} from './options.js'
import type {BackendSpec} from './spec.js'
import type {
  ClusterInfo,
  Health,
  InstanceChanges,
  InstanceInput,
  RegisterOptions,
  Registry,
  RegistrationHandle,
  ServiceInstance,
  ServiceSummary,
  WatchEvent,
  WatchOptions,
} from './types.js'
import {applyChanges, toInstance, validateServiceName} from './validate.js'
import {snapshotWatch, type WatchSink} from './watch.js'

export const LOCAL_DEFAULT_TTL_MS = 15_000

/** What one instance file holds; the file's mtime is the owner's last heartbeat. */
interface InstanceFile {
  instance: ServiceInstance
  ttlMs: number
  owner: {pid: number; host: string}
}

type LocalSpec = Extract<BackendSpec, {kind: 'local'}>

/**
 * The embedded registry: a directory shared by the processes of one machine, one JSON file per instance,
 * written atomically (temporary file + rename). Owners heartbeat by touching their file; readers ignore
 * files whose heartbeat is older than their TTL and remove them.
 */
export class LocalRegistry implements Registry {
  readonly kind = 'local'
  readonly nativeChecks = false
  readonly description: string
  private readonly dir: string
  private readonly options: BackendOptions
  private readonly handles = new Set<LocalHandle>()
  private ready?: Promise<void>

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
    return path.join(this.dir, service, `${encodeURIComponent(id)}.json`)
  }

  /** Writes a file atomically: readers see the old or the new content, never a partial one. */
  async writeAtomic(file: string, content: string): Promise<void> {
    const tmp = path.join(path.dirname(file), `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`)
    try {
      await mkdir(path.dirname(file), {recursive: true, mode: 0o700})
      await writeFile(tmp, content, {mode: 0o600})
      await rename(tmp, file)
    } catch (error) {
      await rm(tmp, {force: true})
      throw this.fsError(error)
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

  private ensureDir(): Promise<void> {
    this.ready ??= mkdir(this.dir, {recursive: true, mode: 0o700}).then(
      () => {},
      (error: unknown) => {
        this.ready = undefined
        throw this.fsError(error)
      },
    )
    return this.ready
  }

  private async serviceNames(): Promise<string[]> {
    try {
      const entries = await readdir(this.dir, {withFileTypes: true})
      return entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name)
    } catch (error) {
      if (hasErrorCode(error, 'ENOENT')) return []
      throw this.fsError(error)
    }
  }

  /** Live instances of a service, and when the earliest of them expires. Expired files are removed. */
  private async readService(service: string): Promise<{instances: ServiceInstance[]; nextExpiry: number}> {
    const dir = path.join(this.dir, service)
    let names: string[]
    try {
      names = await readdir(dir)
    } catch (error) {
      if (hasErrorCode(error, 'ENOENT') || hasErrorCode(error, 'ENOTDIR')) return {instances: [], nextExpiry: Infinity}
      throw this.fsError(error)
    }

    const instances: ServiceInstance[] = []
    let nextExpiry = Infinity
    const now = Date.now()
    for (const name of names) {
      if (!name.endsWith('.json') || name.startsWith('.')) continue
      const file = path.join(dir, name)
      const record = await this.readInstanceFile(file)
      if (!record) continue
      const expiresAt = record.mtimeMs + record.data.ttlMs
      if (expiresAt < now) {
        await this.removeIfExpired(file)
        continue
      }

      nextExpiry = Math.min(nextExpiry, expiresAt)
      instances.push(record.data.instance)
    }

    return {instances, nextExpiry}
  }

  private async readInstanceFile(file: string): Promise<{data: InstanceFile; mtimeMs: number} | undefined> {
    try {
      const [content, info] = await Promise.all([readFile(file, 'utf8'), stat(file)])
      const data = parseInstanceFile(content)
      if (!data) {
        this.options.log(`skipping ${file}: not an svc instance file`)
        return undefined
      }

      return {data, mtimeMs: info.mtimeMs}
    } catch (error) {
      if (hasErrorCode(error, 'ENOENT')) return undefined
      throw this.fsError(error)
    }
  }

  /** Removes an expired file unless its owner heartbeated in the meantime. */
  private async removeIfExpired(file: string): Promise<void> {
    try {
      const info = await stat(file)
      const data = parseInstanceFile(await readFile(file, 'utf8'))
      if (data && info.mtimeMs + data.ttlMs < Date.now()) await unlink(file)
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
    const now = new Date()
    try {
      await utimes(this.file, now, now)
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

function parseInstanceFile(content: string): InstanceFile | undefined {
  try {
    const data = JSON.parse(content) as Partial<InstanceFile>
    const i = data.instance
    if (
      typeof data.ttlMs === 'number' &&
      i &&
      typeof i.service === 'string' &&
      typeof i.id === 'string' &&
      typeof i.address === 'string' &&
      typeof i.port === 'number' &&
      Array.isArray(i.tags) &&
      typeof i.meta === 'object' &&
      i.meta !== null
    ) {
      return data as InstanceFile
    }
  } catch {
    // not JSON: reported by the caller
  }

  return undefined
}
