import {lstat, readdir, unlink} from 'node:fs/promises'
import {hostname} from 'node:os'
import path from 'node:path'

import {hasErrorCode} from '../../guards.js'
import type {Binding, Driver, DriverLimits, DriverWatchSink, OwnedRecord, ReadResult} from '../core/driver.js'
import {type ForeignRecords, foreignRecords} from '../core/foreign.js'
import type {BackendOptions} from '../options.js'
import type {BackendSpec} from '../spec.js'
import type {ClusterInfo, ServiceSummary} from '../types.js'
import {HeartbeatBinding} from './binding.js'
import {RegistryDirectory} from './directory.js'
import {instanceFileName, readInstanceFile, writeAtomic} from './files.js'
import {decodeFile, encodeFile, type FileRecord} from './record.js'
import {watchDirectory, type WatchRead} from './watch.js'

const LOCAL_DEFAULT_TTL_MS = 15_000

type LocalSpec = Extract<BackendSpec, {kind: 'local'}>

/** One service's records as read, and when the earliest live one expires. */
interface ServiceRead {
  records: ReadResult[]
  nextExpiry: number
}

/**
 * The embedded registry: a directory shared by the processes of one machine, one JSON file per instance, written
 * atomically. Owners heartbeat by touching their file; readers ignore files whose heartbeat is older than their
 * TTL. Directories are 0700 and files 0600; symbolic links are never followed.
 */
export class LocalDriver implements Driver {
  readonly kind = 'local'
  readonly nativeChecks = false
  readonly description: string
  readonly limits: DriverLimits = {defaultTtlMs: LOCAL_DEFAULT_TTL_MS, minTtlMs: 1000, refreshApplies: true}
  private readonly directory: RegistryDirectory
  private readonly foreign: ForeignRecords

  constructor(spec: LocalSpec, options: BackendOptions) {
    this.directory = new RegistryDirectory(spec.dir, options.log)
    this.description = `local://${spec.dir}`
    this.foreign = foreignRecords(options.log)
  }

  async ping(): Promise<void> {
    await this.directory.exists()
  }

  async write(record: OwnedRecord): Promise<Binding> {
    return new HeartbeatBinding(await this.put(record))
  }

  async rewrite(record: OwnedRecord): Promise<void> {
    await this.put(record)
  }

  async read(service: string, id: string): Promise<ReadResult | undefined> {
    if ((await this.serviceState(service)) !== 'ok') return undefined
    const file = this.instancePath(service, id)
    // a link or a non-file planted at the instance's own name is no record: the next write replaces it
    const info = await lstat(file).catch(() => undefined)
    if (!info?.isFile()) return undefined
    const found = await this.readFile(file, service)
    return found && found.expiresAt >= Date.now() ? found.result : undefined
  }

  async remove(service: string, id: string): Promise<boolean> {
    // unlink would follow a symbolic link in place of the service's directory
    const state = await this.serviceState(service)
    if (state === 'missing') return false
    if (state !== 'ok') throw this.directory.refused(this.directory.servicePath(service), state)
    try {
      await unlink(this.instancePath(service, id))
      return true
    } catch (error) {
      if (hasErrorCode(error, 'ENOENT')) return false
      throw this.directory.fsError(error)
    }
  }

  async listServices(): Promise<ServiceSummary[]> {
    const summaries: ServiceSummary[] = []
    for (const name of await this.directory.serviceNames(this.foreign)) {
      const instances = this.foreign.select((await this.readService(name)).records).map((r) => r.instance)
      if (instances.length === 0) continue
      summaries.push({
        name,
        instances: instances.length,
        passing: instances.filter((i) => i.health === 'passing').length,
      })
    }

    return summaries
  }

  async listRecords(service: string): Promise<ReadResult[]> {
    return (await this.readService(service)).records
  }

  watch(service: string | undefined, sink: DriverWatchSink): () => void {
    const read = async (): Promise<WatchRead> => {
      const services = service === undefined ? await this.directory.serviceNames(this.foreign) : [service]
      const state: WatchRead = {services, records: [], nextExpiry: Infinity}
      for (const name of services) {
        const {records, nextExpiry} = await this.readService(name)
        state.records.push(...records)
        state.nextExpiry = Math.min(state.nextExpiry, nextExpiry)
      }

      return state
    }

    return watchDirectory(this.directory, read, sink)
  }

  async cluster(): Promise<ClusterInfo> {
    await this.directory.exists()
    const member = {name: hostname(), address: this.directory.dir, role: 'standalone' as const, reachable: true}
    return {backend: 'local', members: [member]}
  }

  /** Files change only through events the core never needs: a local registry has no sessions or members. */
  onEvent(): () => void {
    return () => {}
  }

  async close(): Promise<void> {}

  instancePath(service: string, id: string): string {
    return path.join(this.directory.servicePath(service), instanceFileName(id))
  }

  private async put(record: OwnedRecord): Promise<string> {
    const bytes = encodeFile(record)
    const {service, id} = record.instance
    await this.directory.prepareService(service)
    await this.sweep(service)
    const file = this.instancePath(service, id)
    try {
      await writeAtomic(file, bytes)
    } catch (error) {
      throw this.directory.fsError(error)
    }

    return file
  }

  /** 'ok', 'missing', or why the service's directory must not be used; 'missing' too while there is no registry. */
  private async serviceState(service: string): Promise<string> {
    if (!(await this.directory.exists())) return 'missing'
    return this.directory.serviceState(service)
  }

  /** Every record of a service; expired ones of svc's are left out, never removed by a read. */
  private async readService(service: string): Promise<ServiceRead> {
    const none: ServiceRead = {records: [], nextExpiry: Infinity}
    const state = await this.serviceState(service)
    if (state === 'missing') return none
    const dir = this.directory.servicePath(service)
    if (state !== 'ok') return {...none, records: [{skipped: true, key: dir, reason: `it ${state}`}]}
    const read: ServiceRead = {records: [], nextExpiry: Infinity}
    const now = Date.now()
    for (const entry of await this.entries(dir)) {
      const file = path.join(dir, entry.name)
      const found: FileRecord | undefined = entry.isSymbolicLink()
        ? {
            result: {skipped: true, key: file, reason: 'it is a symbolic link, which svc does not follow'},
            expiresAt: Infinity,
          }
        : await this.readFile(file, service)
      if (found === undefined || found.expiresAt < now) continue
      read.records.push(found.result)
      if (found.expiresAt !== Infinity) read.nextExpiry = Math.min(read.nextExpiry, found.expiresAt)
    }

    return read
  }

  private async entries(dir: string) {
    try {
      const entries = await readdir(dir, {withFileTypes: true})
      return entries.filter((e) => e.name.endsWith('.json') && !e.name.startsWith('.'))
    } catch (error) {
      if (hasErrorCode(error, 'ENOENT') || hasErrorCode(error, 'ENOTDIR')) return []
      throw this.directory.fsError(error)
    }
  }

  private async readFile(file: string, service: string): Promise<FileRecord | undefined> {
    const read = await readInstanceFile(file)
    if (read === undefined) return undefined
    if ('skip' in read) return {result: {skipped: true, key: file, reason: read.skip}, expiresAt: Infinity}
    return decodeFile(read.content, read.mtimeMs, file, service)
  }

  /** A write removes the expired files of svc's in its service directory: the one place the registry shrinks. */
  private async sweep(service: string): Promise<void> {
    const dir = this.directory.servicePath(service)
    const now = Date.now()
    for (const entry of await this.entries(dir)) {
      if (!entry.isFile()) continue
      const file = path.join(dir, entry.name)
      const found = await this.readFile(file, service)
      if (!found || found.expiresAt >= now || 'skipped' in found.result) continue
      // another writer may have removed it first, and unlink removes a link that replaced it, never its target
      await unlink(file).catch(() => {})
    }
  }
}

export function createDriver(spec: LocalSpec, options: BackendOptions): Driver {
  return new LocalDriver(spec, options)
}
