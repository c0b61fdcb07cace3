import {formatDuration} from '../../duration.js'
import {UserError} from '../../errors.js'
import type {BackendOptions} from '../options.js'
import type {
  ClusterInfo,
  InstanceInput,
  RegisterOptions,
  Registry,
  RegistrationHandle,
  Removal,
  ServiceInstance,
  ServiceSummary,
  WatchEvent,
  WatchOptions,
} from '../types.js'
import {toInstance, validateInstanceId, validateServiceName} from '../validate.js'
import {sortInstances} from './diff.js'
import {type Driver, type DriverLimits, isSkipped, type OwnedRecord} from './driver.js'
import {type ForeignRecords, foreignRecords} from './foreign.js'
import {currentOwner, describeOwner, ownerAlive, sameOwner} from './owner.js'
import {refreshPeriod, withPolicy} from './policy.js'
import {PresenceScheduler} from './presence.js'
import {Registration} from './registration.js'
import {snapshotWatch} from './watch.js'

/** No backend is asked to keep a record alive for less than this. */
const MIN_TTL_MS = 1000
/** The lowest refresh period the lifecycle runs at. */
const MIN_REFRESH_MS = 100

/** The Registry every command uses, written once over a backend driver. */
export class CoreRegistry implements Registry {
  readonly kind: Registry['kind']
  readonly nativeChecks: boolean
  readonly description: string
  private readonly driver: Driver
  private readonly options: BackendOptions
  private readonly foreign: ForeignRecords
  private readonly handles = new Set<Registration>()
  private readonly scheduler: PresenceScheduler
  /** Open watch streams, ended by close() so no caller waits on a closed registry. */
  private readonly watches = new Set<AbortController>()

  constructor(driver: Driver, options: BackendOptions) {
    this.driver = driver
    this.options = options
    this.kind = driver.kind
    this.nativeChecks = driver.nativeChecks
    this.description = driver.description
    this.foreign = foreignRecords(options.log)
    this.scheduler = new PresenceScheduler(driver, options.log)
  }

  ping(): Promise<void> {
    return this.driver.ping()
  }

  async register(input: InstanceInput, opts: RegisterOptions = {}): Promise<RegistrationHandle> {
    const instance = toInstance(input)
    const {limits} = this.driver
    const ttlMs = checkTtl(opts.ttlMs ?? limits.defaultTtlMs, limits, this.driver.kind)
    const record: OwnedRecord = {
      instance,
      owner: currentOwner(),
      ttlMs,
      refreshMs: refreshPeriod(ttlMs, checkRefresh(opts.refreshMs, ttlMs, limits, this.driver.kind), MIN_REFRESH_MS),
      ...(opts.check ? {check: opts.check} : {}),
    }
    await this.claim(instance)
    const binding = await this.driver.write(record)
    const handle: Registration = new Registration({
      driver: this.driver,
      record,
      binding,
      scheduler: this.scheduler,
      onStateChange: opts.onStateChange,
      log: this.options.log,
      onClosed: () => this.handles.delete(handle),
    })
    this.handles.add(handle)
    return handle
  }

  async deregister(service: string, id: string): Promise<Removal> {
    validateServiceName(service)
    validateInstanceId(id)
    const found = await this.reading(`reading ${service} ${id}`, () => this.driver.read(service, id))
    const removed = await this.driver.remove(service, id)
    const owner = found && !isSkipped(found) ? found.owner : undefined
    if (!owner) return {removed}
    return {removed, owner: {host: owner.host, pid: owner.pid, alive: removed && ownerAlive(owner)}}
  }

  async listServices(): Promise<ServiceSummary[]> {
    return this.foreign.serviceNames(await this.reading('listing services', () => this.driver.listServices()))
  }

  async listInstances(service: string): Promise<ServiceInstance[]> {
    validateServiceName(service)
    const listed = await this.reading(`listing ${service}`, () => this.driver.listRecords(service))
    const records = this.foreign.select(listed)
    return sortInstances(records.map((r) => r.instance).filter((i) => i.service === service))
  }

  watch(service?: string, opts: WatchOptions = {}): AsyncIterableIterator<WatchEvent> {
    if (service !== undefined) validateServiceName(service)
    const own = new AbortController()
    const signal = opts.signal ? AbortSignal.any([opts.signal, own.signal]) : own.signal
    this.watches.add(own)
    return snapshotWatch({...opts, signal, foreign: this.foreign}, (sink) => {
      const stop = this.driver.watch(service, sink)
      return () => {
        this.watches.delete(own)
        stop()
      }
    })
  }

  cluster(): Promise<ClusterInfo> {
    return this.reading('describing the cluster', () => this.driver.cluster())
  }

  async close(): Promise<void> {
    for (const watch of this.watches) watch.abort()
    this.watches.clear()
    await Promise.allSettled([...this.handles].map((h) => h.close()))
    this.scheduler.close()
    await this.driver.close()
  }

  /** A read under the one policy: the request deadline, transient errors retried with capped jittered backoff. */
  private reading<T>(what: string, read: () => Promise<T>): Promise<T> {
    const {requestTimeoutMs, retry} = this.options
    return withPolicy({backend: this.kind, what, deadlineMs: requestTimeoutMs, retry}, read)
  }

  /** Uniqueness: an id held by a different live owner, or by another tool, is refused; a dead owner's is taken over. */
  private async claim(instance: ServiceInstance): Promise<void> {
    const {service, id} = instance
    const found = await this.reading(`reading ${service} ${id}`, () => this.driver.read(service, id))
    if (found === undefined) return
    const fix = `choose another --id, or remove it with: svc deregister ${service} ${id}`
    if (isSkipped(found)) {
      throw new UserError(`${service} ${id} is taken by a record svc cannot read (${found.reason})`, fix, 1)
    }

    const {owner} = found
    if (owner === undefined) throw new UserError(`${service} ${id} is taken by a record another tool wrote`, fix, 1)
    if (sameOwner(owner, currentOwner()) || !ownerAlive(owner)) return
    throw new UserError(
      `${service} ${id} is already registered by ${describeOwner(owner)}`,
      'stop that process first, or register with another --id',
      1,
    )
  }
}

/** The TTL asked for, or a refusal naming the backend's floor (never below 1 s). */
function checkTtl(ttlMs: number, limits: DriverLimits, kind: string): number {
  const floor = Math.max(MIN_TTL_MS, limits.minTtlMs)
  if (ttlMs < floor) {
    throw new UserError(
      `a TTL of ${formatDuration(ttlMs)} is below ${kind}'s floor of ${formatDuration(floor)}`,
      `use --ttl ${formatDuration(floor)} or more`,
    )
  }

  return ttlMs
}

/** The refresh period asked for, refused where the backend has no use for it or where it is not below the TTL. */
function checkRefresh(
  refreshMs: number | undefined,
  ttlMs: number,
  limits: DriverLimits,
  kind: string,
): number | undefined {
  if (refreshMs === undefined) return undefined
  if (!limits.refreshApplies) {
    throw new UserError(
      `--ttl-refresh does not apply to ${kind}: its client keeps the session alive by itself`,
      'drop --ttl-refresh and set the session timeout with --ttl',
    )
  }

  if (refreshMs >= ttlMs) {
    throw new UserError(
      `a refresh period of ${formatDuration(refreshMs)} is not below the TTL of ${formatDuration(ttlMs)}`,
      'refresh at a third of the TTL, e.g. --ttl 30s --ttl-refresh 10s',
    )
  }

  return refreshMs
}
