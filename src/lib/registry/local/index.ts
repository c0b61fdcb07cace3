import {unlink} from 'node:fs/promises'
import {hostname} from 'node:os'
import path from 'node:path'

import {hasErrorCode} from '../../guards.js'
import {instanceKey} from '../core/diff.js'
import type {
  Binding,
  Driver,
  DriverLimits,
  DriverWatchSink,
  OwnedRecord,
  ReadResult,
  RecordKey,
} from '../core/driver.js'
import {type ForeignRecords, foreignRecords} from '../core/foreign.js'
import {currentOwner} from '../core/owner.js'
import type {BackendOptions} from '../options.js'
import type {BackendSpec} from '../spec.js'
import type {ClusterInfo, ServiceSummary} from '../types.js'
import {HeartbeatBinding} from './binding.js'
import {RegistryDirectory} from './directory.js'
import {instanceFileName, writeAtomic} from './files.js'
import {OwnerHeartbeat} from './owners.js'
import {FileReader, type ServiceRead} from './reader.js'
import {encodeFile, expiresAt} from './record.js'
import {watchDirectory} from './watch.js'

const LOCAL_DEFAULT_TTL_MS = 15_000
/** Service directories read at once by readMany. */
const READ_CONCURRENCY = 16

type LocalSpec = Extract<BackendSpec, {kind: 'local'}>

/**
 * The embedded registry: a directory shared by the processes of one machine, one JSON file per instance, written
 * atomically and never touched again. Each owner (process) heartbeats one file, `.svc@owners/<host>-<pid>-<nonce>`;
 * readers ignore instances whose owner's heartbeat (or own write) is older than their TTL. Directories are 0700
 * and files 0600; symbolic links are never followed.
 */
export class LocalDriver implements Driver {
  readonly kind = 'local'
  readonly nativeChecks = false
  readonly description: string
  readonly limits: DriverLimits = {defaultTtlMs: LOCAL_DEFAULT_TTL_MS, minTtlMs: 1000, refreshApplies: true}
  private readonly directory: RegistryDirectory
  private readonly foreign: ForeignRecords
  private readonly reader: FileReader
  private heartbeat?: OwnerHeartbeat

  constructor(spec: LocalSpec, options: BackendOptions) {
    this.directory = new RegistryDirectory(spec.dir, options.log)
    this.description = `local://${spec.dir}`
    this.foreign = foreignRecords(options.log)
    this.reader = new FileReader(this.directory)
  }

  async ping(): Promise<void> {
    await this.directory.exists()
  }

  async write(record: OwnedRecord): Promise<Binding> {
    await this.put(record)
    this.heartbeat ??= new OwnerHeartbeat(this.directory.dir, currentOwner())
    // the file's own write keeps it alive for a TTL: the heartbeat need only exist by the next refresh
    await this.heartbeat.beat(record.refreshMs / 2).catch((error: unknown) => {
      throw this.directory.fsError(error)
    })
    return new HeartbeatBinding(this.heartbeat, record.refreshMs)
  }

  async rewrite(record: OwnedRecord): Promise<void> {
    await this.put(record)
  }

  async read(service: string, id: string): Promise<ReadResult | undefined> {
    if ((await this.serviceState(service)) !== 'ok') return undefined
    const found = await this.reader.one(service, this.instancePath(service, id))
    if (found === undefined || found.notFile) return undefined
    const beat = found.owner === undefined ? undefined : await this.reader.beats().beat(found.owner)
    return expiresAt(found, beat) >= Date.now() ? found.result : undefined
  }

  /** One directory listing per service named; files are decoded again only when they changed. */
  async readMany(keys: readonly RecordKey[]): Promise<Map<string, ReadResult>> {
    const byService = new Map<string, Map<string, RecordKey>>()
    for (const key of keys) {
      const files = byService.get(key.service) ?? new Map<string, RecordKey>()
      files.set(this.instancePath(key.service, key.id), key)
      byService.set(key.service, files)
    }

    const found = new Map<string, ReadResult>()
    if (!(await this.directory.exists())) return found
    const beats = this.reader.beats()
    const now = Date.now()
    const services = [...byService.entries()]
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < services.length) {
        const [service, wanted] = services[next++] as [string, Map<string, RecordKey>]
        const {records, state} = await this.reader.serviceFiles(service, true, beats)
        if (state !== 'ok') continue
        for (const record of records) {
          const key = wanted.get(fileOf(record.result, this.directory.servicePath(service)))
          if (key === undefined || record.notFile) continue
          const beat = record.owner === undefined ? undefined : await beats.beat(record.owner)
          if (expiresAt(record, beat) >= now) found.set(instanceKey(key), record.result)
        }
      }
    }

    await Promise.all(Array.from({length: Math.min(READ_CONCURRENCY, services.length)}, worker))
    return found
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
    return watchDirectory(
      {
        directory: this.directory,
        reader: this.reader,
        serviceNames: async () => (service === undefined ? this.directory.serviceNames(this.foreign) : [service]),
        only: service,
      },
      sink,
    )
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
    const {records} = await this.reader.serviceFiles(service)
    return this.reader.live(records, this.reader.beats())
  }

  /** A write removes the expired files of svc's in its service directory: the one place the registry shrinks. */
  private async sweep(service: string): Promise<void> {
    const {records, state} = await this.reader.serviceFiles(service)
    if (state !== 'ok') return
    const beats = this.reader.beats()
    const now = Date.now()
    for (const record of records) {
      if ('skipped' in record.result) continue
      const beat = record.owner === undefined ? undefined : await beats.beat(record.owner)
      if (expiresAt(record, beat) >= now) continue
      // another writer may have removed it first, and unlink removes a link that replaced it, never its target
      await unlink(this.instancePath(service, record.result.instance.id)).catch(() => {})
    }
  }
}

/** Where a record read from a service directory lives. */
function fileOf(result: ReadResult, dir: string): string {
  return 'skipped' in result ? result.key : path.join(dir, instanceFileName(result.instance.id))
}

export function createDriver(spec: LocalSpec, options: BackendOptions): Driver {
  return new LocalDriver(spec, options)
}
