import {setMaxListeners} from 'node:events'
import {
  ClientClosedError,
  Etcd3,
  EtcdAuthenticationFailedError,
  EtcdInvalidAuthTokenError,
  EtcdLeaseInvalidError,
  EtcdPermissionDeniedError,
  GRPCDeadlineExceededError,
  GRPCInvalidArgumentError,
  GRPCUnauthenticatedError,
  GRPCUnavailableError,
  type IKeyValue,
  type IOptions,
  type IWatchResponse,
  isRecoverableError,
  type Lease,
  type Watcher,
} from 'etcd3'
import {AsyncLocalStorage} from 'node:async_hooks'
import {readFileSync} from 'node:fs'
import {connect as tlsConnect} from 'node:tls'
import http from 'node:http'
import https from 'node:https'

import {
  BackendError,
  BackendUnavailableError,
  BugError,
  errorMessage,
  formatError,
  isTransient,
  UserError,
} from '../errors.js'
import {type BackendOptions, backoffDelay, refreshPeriod, type RetryPolicy, sleep} from './options.js'
import {type BackendSpec, type Credentials, describeBackend, formatHosts, type TlsFiles} from './spec.js'
import {
  type ClusterInfo,
  type ClusterMember,
  HEALTH_VALUES,
  type Health,
  type InstanceChanges,
  type InstanceInput,
  type RegisterOptions,
  type RegistrationHandle,
  type RegistrationState,
  type ServiceInstance,
  type ServiceSummary,
  type WatchEvent,
  type WatchOptions,
} from './types.js'
import {isRecord} from '../guards.js'
import {sortInstances} from './diff.js'
import {applyChanges, isInstanceSource, toInstance, validateInstanceId, validateServiceName} from './validate.js'
import {snapshotWatch, type WatchSink} from './watch.js'
import type {LegacyRegistry} from './legacy.js'

type EtcdSpec = Extract<BackendSpec, {kind: 'etcd'}>
type FaultHandling = NonNullable<IOptions['faultHandling']>
type Policy = NonNullable<FaultHandling['global']>
type Backoff = NonNullable<FaultHandling['watchBackoff']>
type PolicyFn<T> = (context: {signal: AbortSignal}) => PromiseLike<T> | T

/** The bounds of the operation in progress, seen by the call-options factory and the retry policy. */
interface OperationScope {
  deadline: number
  signal: AbortSignal
}

const DEFAULT_TTL_MS = 10_000
const MIN_TTL_SECONDS = 2
const PROBE_TIMEOUT_MS = 2000
/** A TLS handshake with a member that just refused gRPC takes milliseconds; the diagnosis must not hold errors up. */
const TLS_PROBE_TIMEOUT_MS = 1000
const WATCH_CANCEL_TIMEOUT_MS = 1000
const BREAKER_INITIAL_MS = 1000
const BREAKER_MAX_MS = 10_000
const REPORT_REPEAT_MS = 30_000

/** Thrown by a member's breaker while the member is skipped because it failed recently; never reaches callers. */
class MemberSkippedError extends Error {
  override name = 'MemberSkippedError'
}

/** The etcd v3 backend: one key per instance under `<prefix>/<service>/<id>`, attached to a kept-alive lease. */
export class EtcdRegistry implements LegacyRegistry {
  readonly kind = 'etcd' as const
  readonly nativeChecks = false
  readonly description: string
  readonly options: BackendOptions
  readonly prefix: string
  private readonly addresses: string
  private readonly hostUrls: string[]
  private readonly auth?: Credentials
  private readonly tls?: TlsFiles
  /** The PEM contents of the TLS files, read when the client is first made. */
  private pem?: {ca?: Buffer; cert?: Buffer; key?: Buffer}
  private readonly scope = new AsyncLocalStorage<OperationScope>()
  private readonly closing = new AbortController()
  private readonly registrations = new Set<EtcdRegistration>()
  private readonly watches = new Set<PrefixWatch>()
  private readonly warned = new Set<string>()
  private client?: Etcd3
  private reached = false
  /** 'closing' still lets close() deregister through the client; public methods need 'open'. */
  private state: 'closed' | 'closing' | 'open' = 'open'

  constructor(spec: EtcdSpec, options: BackendOptions) {
    // every operation in flight listens for close: a burst of them is normal, not a leak
    setMaxListeners(0, this.closing.signal)
    this.options = options
    this.prefix = spec.prefix
    this.description = describeBackend(spec)
    this.addresses = formatHosts(spec.hosts)
    this.auth = spec.auth
    this.tls = spec.tls
    const scheme = spec.tls ? 'https' : 'http'
    this.hostUrls = spec.hosts.map((h) => `${scheme}://${h.host.includes(':') ? `[${h.host}]` : h.host}:${h.port}`)
  }

  async ping(): Promise<void> {
    await this.op((client) => client.maintenance.status())
  }

  async register(input: InstanceInput, opts: RegisterOptions = {}): Promise<RegistrationHandle> {
    const instance = toInstance(input)
    this.assertOpen()
    const ttl = Math.max(MIN_TTL_SECONDS, Math.ceil((opts.ttlMs ?? DEFAULT_TTL_MS) / 1000))
    const registration = new EtcdRegistration(this, instance, ttl, opts)
    await registration.start()
    if (this.state !== 'open') {
      await registration.close().catch(() => {})
      throw new BackendError('etcd', 'the registry was closed while registering', {transient: false})
    }

    this.registrations.add(registration)
    return registration
  }

  async deregister(service: string, id: string): Promise<boolean> {
    const key = this.instanceKey(validateServiceName(service), validateInstanceId(id))
    // etcd3 sends a delete again on another member when an answer is lost, and the second one finds nothing:
    // a key seen just before is reported removed whichever of them removed it
    const existed = await this.op((client) => client.get(key).exists())
    if (!existed) return false
    await this.op((client) => client.delete().key(key).exec())
    return true
  }

  async listServices(): Promise<ServiceSummary[]> {
    const {instances} = await this.readRange(`${this.prefix}/`)
    const byName = new Map<string, ServiceSummary>()
    for (const instance of instances.values()) {
      const summary = byName.get(instance.service) ?? {name: instance.service, instances: 0, passing: 0}
      summary.instances++
      if (instance.health === 'passing') summary.passing++
      byName.set(instance.service, summary)
    }

    return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name))
  }

  async listInstances(service: string): Promise<ServiceInstance[]> {
    const {instances} = await this.readRange(this.servicePrefix(validateServiceName(service)))
    return sortInstances([...instances.values()])
  }

  watch(service?: string, opts: WatchOptions = {}): AsyncIterableIterator<WatchEvent> {
    const range = service === undefined ? `${this.prefix}/` : this.servicePrefix(validateServiceName(service))
    this.assertOpen()
    const watch = new PrefixWatch(this, range)
    const stream = snapshotWatch(opts, undefined, (sink) => {
      this.watches.add(watch)
      watch.start(sink)
      return () => watch.stop()
    })
    watch.stream = stream
    return stream
  }

  async cluster(): Promise<ClusterInfo> {
    const {members} = await this.op((client) => client.cluster.memberList({}))
    const timeoutMs = Math.min(PROBE_TIMEOUT_MS, this.options.connectTimeoutMs)
    const probes = await Promise.all(
      members.map(async (member) => {
        const url = member.clientURLs[0]
        const status = url === undefined ? undefined : await this.probeMember(url, timeoutMs)
        return {member, url, status}
      }),
    )
    // The leader as most reachable members see it; a partitioned member may report none or a stale one.
    const votes = new Map<string, number>()
    for (const {status} of probes) {
      if (status && status.leader !== '0') votes.set(status.leader, (votes.get(status.leader) ?? 0) + 1)
    }

    const leaderId = [...votes.entries()].sort((a, b) => b[1] - a[1])[0]?.[0]
    const result: ClusterMember[] = probes.map(({member, status, url}) => ({
      name: member.name || BigInt(member.ID).toString(16),
      address: url === undefined ? '' : urlAddress(url),
      role: member.ID === leaderId ? 'leader' : status ? 'follower' : 'unknown',
      reachable: status !== undefined,
    }))
    result.sort((a, b) => a.address.localeCompare(b.address, undefined, {numeric: true}))
    const leader = result.find((m) => m.role === 'leader')
    return leader ? {backend: 'etcd', members: result, leader: leader.address} : {backend: 'etcd', members: result}
  }

  async close(): Promise<void> {
    if (this.state !== 'open') return
    this.state = 'closing'
    const registrations = [...this.registrations].map(async (registration) => {
      try {
        await registration.close()
      } catch (error) {
        this.options.log(
          `etcd: could not remove ${registration.key} (${formatError(error)}); its lease expires by itself`,
        )
      }
    })
    await Promise.all(registrations)
    // Watchers still attached to etcd3's watch manager would make it reconnect forever once the client is closed.
    await Promise.all([...this.watches].map((watch) => watch.end()))
    this.watches.clear()
    this.state = 'closed'
    this.closing.abort()
    this.client?.close()
    this.client = undefined
  }

  instanceKey(service: string, id: string): string {
    return `${this.servicePrefix(service)}${id}`
  }

  /**
   * Runs one request through the client, bounded as a whole by the connect timeout until the cluster has answered
   * once and by the request timeout after, and converts what it throws.
   */
  async op<T>(fn: (client: Etcd3) => Promise<T>): Promise<T> {
    const client = this.getClient()
    const budget = this.reached ? this.options.requestTimeoutMs : this.options.connectTimeoutMs
    const controller = new AbortController()
    const abort = (): void => controller.abort()
    this.closing.signal.addEventListener('abort', abort, {once: true})
    let timer: NodeJS.Timeout | undefined
    const expired = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        controller.abort()
        reject(new BackendUnavailableError('etcd', this.addresses, `no answer after ${seconds(budget)}`))
      }, budget)
    })
    const work = this.scope.run({deadline: Date.now() + budget, signal: controller.signal}, () => fn(client))
    work.catch(() => {})
    try {
      const result = await Promise.race([work, expired])
      this.reached = true
      return result
    } catch (error) {
      const failure = this.toBackendError(error)
      // gRPC hides why a connection failed; a TLS handshake of our own tells a TLS problem from a server that is down
      // (only after gRPC gave up on a connection: a member that does not answer at all has had its time already)
      if (error instanceof GRPCUnavailableError) throw (await this.diagnoseTls(failure)) ?? failure
      throw failure
    } finally {
      clearTimeout(timer)
      this.closing.signal.removeEventListener('abort', abort)
    }
  }

  /** The one place where etcd3 and gRPC errors become svc's errors. */
  toBackendError(error: unknown): Error {
    if (error instanceof BackendError || error instanceof UserError || error instanceof BugError) return error
    const detail = cleanMessage(error)
    if (error instanceof MemberSkippedError) return new BackendUnavailableError('etcd', this.addresses, detail, error)
    if (error instanceof GRPCUnavailableError || error instanceof GRPCDeadlineExceededError) {
      return new BackendUnavailableError('etcd', this.addresses, detail, error)
    }

    if (error instanceof EtcdAuthenticationFailedError) {
      return new BackendError('etcd', `etcd refused the user name or password of user "${this.auth?.user ?? ''}"`, {
        cause: error,
        hint: 'check user:password in the URI (etcd://user:password@host) or in ETCDCTL_USER',
        transient: false,
      })
    }

    if (error instanceof EtcdPermissionDeniedError || error instanceof EtcdInvalidAuthTokenError) {
      const who = this.auth ? `user "${this.auth.user}"` : 'a client without a user'
      return new BackendError('etcd', `etcd denied ${who} permission on ${this.prefix}/ (${detail})`, {
        cause: error,
        hint: this.auth
          ? `grant its role readwrite on the prefix: etcdctl role grant-permission ROLE --prefix readwrite ${this.prefix}/`
          : 'etcd has authentication on: pass user:password in the URI (etcd://user:password@host) or in ETCDCTL_USER',
        transient: false,
      })
    }

    if (error instanceof GRPCUnauthenticatedError || /user name is empty/.test(detail)) {
      return new BackendError('etcd', `etcd requires a user (${detail})`, {
        cause: error,
        hint: 'pass user:password in the URI (etcd://user:password@host) or in ETCDCTL_USER',
        transient: false,
      })
    }

    if (error instanceof GRPCInvalidArgumentError) {
      return new BackendError('etcd', `etcd rejected the request: ${detail}`, {cause: error, transient: false})
    }

    if (error instanceof ClientClosedError) {
      return new BackendError('etcd', 'the etcd client is closed', {cause: error, transient: false})
    }

    if (error instanceof EtcdLeaseInvalidError) {
      return new BackendError('etcd', `etcd lease lost: ${detail}`, {cause: error, transient: true})
    }

    const transient = error instanceof Error && isRecoverableError(error)
    return new BackendError('etcd', `etcd request failed: ${detail}`, {cause: error, transient})
  }

  /** Reads every instance under a key prefix at one revision; invalid values are skipped with one warning each. */
  async readRange(prefix: string): Promise<{instances: Map<string, ServiceInstance>; revision: number}> {
    const response = await this.op((client) => client.getAll().prefix(prefix).exec())
    const instances = new Map<string, ServiceInstance>()
    for (const kv of response.kvs) {
      const instance = this.decode(kv)
      if (instance) instances.set(kv.key.toString(), instance)
    }

    return {instances, revision: Number(response.header.revision)}
  }

  /** The instance a key-value holds, or undefined (with a warning once per key version) when it holds none. */
  decode(kv: IKeyValue): ServiceInstance | undefined {
    const key = kv.key.toString()
    const result = decodeInstance(this.prefix, key, kv.value.toString())
    if (typeof result !== 'string') return result
    const seen = `${key}@${kv.mod_revision}`
    if (!this.warned.has(seen)) {
      this.warned.add(seen)
      this.options.log(`etcd: skipping ${key}: ${result}`)
    }

    return undefined
  }

  forgetWatch(watch: PrefixWatch): void {
    this.watches.delete(watch)
  }

  forgetRegistration(registration: EtcdRegistration): void {
    this.registrations.delete(registration)
  }

  getClient(): Etcd3 {
    if (this.state === 'closed') throw new BugError(`the registry ${this.description} was used after close()`)
    if (this.client) return this.client
    const security = this.securityOptions()
    if (this.tls) muteIpServerNameWarning()
    try {
      this.client = new Etcd3({...this.clientOptions(), ...security})
    } catch (error) {
      // grpc-js checks the PEM files when it builds its credentials
      if (!security.credentials) throw error
      throw new UserError(
        `cannot use the TLS files (${errorMessage(error)})`,
        'give --cacert, --cert and --key PEM files, --key the key of --cert',
      )
    }

    return this.client
  }

  private clientOptions(): IOptions {
    const {retry} = this.options
    // One attempt may not use the whole budget, so that a member that does not answer leaves time for another.
    const attemptMs = Math.min(2000, Math.max(500, Math.round(this.options.requestTimeoutMs / 4)))
    const breakers: MemberBreaker[] = []
    return {
      hosts: this.hostUrls,
      // gRPC's default reconnect backoff grows to 120 s; keep it short so a restarted member is used again soon.
      grpcOptions: {
        'grpc.initial_reconnect_backoff_ms': Math.max(100, retry.initialDelayMs),
        'grpc.max_reconnect_backoff_ms': Math.max(1000, retry.maxDelayMs),
        // etcd refuses pings more often than every 5 s; these detect a member that vanished under an open watch.
        'grpc.keepalive_time_ms': 10_000,
        'grpc.keepalive_timeout_ms': 5000,
      },
      defaultCallOptions: (context) => {
        if (context.isStream) return {}
        // Calls that outlive their operation (etcd3's keep-alive loop inherits the scope) get a fresh bound.
        const scope = this.scope.getStore()
        const now = Date.now()
        const end = now + attemptMs
        return {deadline: scope && scope.deadline > now ? Math.min(end, scope.deadline) : end}
      },
      faultHandling: {
        global: retryPolicy(retry, Math.max(retry.attempts, this.hostUrls.length) + 1, this.scope, this.closing.signal),
        host() {
          const breaker = new MemberBreaker(breakers)
          breakers.push(breaker)
          return memberPolicy(breaker)
        },
        watchBackoff: exponentialBackoff(retry, 0),
      },
    }
  }

  /**
   * One member's status. A secured cluster is asked over gRPC with the client's credentials: etcd's HTTP gateway
   * refuses a client certificate once auth is on (and wants a token); a plain one through the gateway, lighter.
   */
  private async probeMember(url: string, timeoutMs: number): Promise<StatusAnswer | undefined> {
    if (!this.tls && !this.auth) return probeStatus(url, timeoutMs)
    const member = new Etcd3({
      hosts: [url],
      ...this.securityOptions(),
      defaultCallOptions: () => ({deadline: Date.now() + timeoutMs}),
      faultHandling: {global: noRetry(), host: () => noRetry()},
    })
    try {
      const status = await member.maintenance.status()
      return {leader: status.leader}
    } catch {
      return undefined
    } finally {
      member.close()
    }
  }

  /** A TLS problem with the first member that shows one, as the error to report; undefined when there is none. */
  private async diagnoseTls(failure: Error): Promise<BackendError | undefined> {
    const timeoutMs = Math.min(TLS_PROBE_TIMEOUT_MS, this.options.connectTimeoutMs)
    const verdicts = await Promise.all(
      this.hostUrls.map((url) => probeTls(new URL(url), this.tls, this.pem, timeoutMs)),
    )
    const problem = verdicts.find((v) => v !== undefined)
    if (!problem) return undefined
    return new BackendError('etcd', `TLS with etcd at ${this.addresses} failed: ${problem.cause}`, {
      cause: failure,
      hint: problem.hint,
      transient: false,
    })
  }

  /** Password auth and TLS; a TLS file that cannot be read is the user's to fix, named with its flag. */
  private securityOptions(): Pick<IOptions, 'auth' | 'credentials'> {
    const options: Pick<IOptions, 'auth' | 'credentials'> = {}
    if (this.auth) options.auth = {username: this.auth.user, password: this.auth.password}
    if (!this.tls) return options
    const read = (file: string | undefined, flag: string): Buffer | undefined => {
      if (file === undefined) return undefined
      try {
        return readFileSync(file)
      } catch (error) {
        throw new UserError(
          `cannot read ${flag} ${file} (${(error as NodeJS.ErrnoException).code ?? errorMessage(error)})`,
          `give ${flag} a readable PEM file`,
        )
      }
    }

    this.pem = {
      ca: read(this.tls.ca, '--cacert'),
      cert: read(this.tls.cert, '--cert'),
      key: read(this.tls.key, '--key'),
    }
    // without --cacert, the system's CAs; grpc-js takes null for them though etcd3's type says Buffer
    const rootCertificate = (this.pem.ca ?? null) as Buffer
    options.credentials = {rootCertificate, privateKey: this.pem.key, certChain: this.pem.cert}
    return options
  }

  private servicePrefix(service: string): string {
    return `${this.prefix}/${service}/`
  }

  private assertOpen(): void {
    if (this.state !== 'open') throw new BugError(`the registry ${this.description} was used after close()`)
  }
}

/** One registration: a lease kept alive by etcd3, granted again and the key put again whenever it is lost. */
class EtcdRegistration implements RegistrationHandle {
  readonly key: string
  private current: ServiceInstance
  private lease?: Lease
  private leaseId = ''
  private recovering = false
  private closed = false
  private readonly stop = new AbortController()
  private keepAliveTrouble = false
  private refreshTimer?: NodeJS.Timeout

  constructor(
    private readonly registry: EtcdRegistry,
    instance: ServiceInstance,
    private readonly ttl: number,
    private readonly opts: Pick<RegisterOptions, 'onStateChange' | 'refreshMs'>,
  ) {
    this.current = instance
    this.key = registry.instanceKey(instance.service, instance.id)
  }

  get instance(): ServiceInstance {
    return this.current
  }

  async start(): Promise<void> {
    this.adopt(await this.attach())
  }

  async setHealth(health: Health): Promise<void> {
    if (this.closed) throw new BugError(`setHealth on the closed registration ${this.key}`)
    this.current = {...this.current, health}
    await this.publish()
  }

  async update(changes: InstanceChanges): Promise<void> {
    if (this.closed) throw new BugError(`update on the closed registration ${this.key}`)
    this.current = applyChanges(this.current, changes)
    await this.publish()
  }

  /** Puts the current value on the current lease; during recovery, recovery puts it. */
  private async publish(): Promise<void> {
    const {lease} = this
    if (!lease || this.recovering) return
    try {
      await this.registry.op(() => lease.put(this.key).value(this.serialized()).exec())
    } catch (error) {
      // Recovery puts the latest value once the lease is granted again.
      if (!this.recovering) throw error
    }
  }

  async close(opts: {deregister?: boolean} = {}): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.stop.abort()
    this.registry.forgetRegistration(this)
    clearInterval(this.refreshTimer)
    const {lease} = this
    this.lease = undefined
    // Keep-alives stop here whatever happens next; without them the key expires after its TTL.
    lease?.release()
    if (opts.deregister === false) return
    // Between a lost lease and a new one nothing owns the key: then remove whatever is left of it.
    await (lease
      ? this.registry.op(() => lease.revoke())
      : this.registry.op((client) => client.delete().key(this.key).exec()))
  }

  /** Grants a lease and puts the key on it; on failure the lease is given up. */
  private async attach(): Promise<{lease: Lease; id: string}> {
    let lease: Lease | undefined
    try {
      return await this.registry.op(async (client) => {
        lease = client.lease(this.ttl)
        const id = await lease.grant()
        let written = ''
        while (written !== this.serialized()) {
          written = this.serialized()
          await lease.put(this.key).value(written).exec()
        }

        return {lease, id}
      })
    } catch (error) {
      const failed = lease
      if (failed) failed.revoke().catch(() => failed.release())
      throw error
    }
  }

  private adopt({id, lease}: {lease: Lease; id: string}): void {
    this.lease = lease
    this.leaseId = id
    lease.on('lost', (error: Error) => this.lost(lease, error))
    // etcd3 types this argument as a response, but emits the error.
    lease.on('keepaliveFailed', (error: unknown) => {
      if (this.keepAliveTrouble || this.lease !== lease) return
      this.keepAliveTrouble = true
      this.registry.options.log(
        `etcd: keep-alive of lease ${hex(id)} for ${this.key} failed (${cleanMessage(error)}); retrying`,
      )
    })
    lease.on('keepaliveSucceeded', () => {
      if (!this.keepAliveTrouble || this.lease !== lease) return
      this.keepAliveTrouble = false
      this.registry.options.log(`etcd: keep-alive of lease ${hex(id)} for ${this.key} works again`)
    })
    this.refreshEvery(lease)
    // The lease may have been lost between the grant and the listener.
    if (lease.revoked()) this.lost(lease, new EtcdLeaseInvalidError(id))
  }

  /** etcd3 keeps the lease alive at a third of its TTL; a shorter refreshMs adds keep-alives of our own. */
  private refreshEvery(lease: Lease): void {
    clearInterval(this.refreshTimer)
    const every = refreshPeriod(this.ttl * 1000, this.opts.refreshMs, 200)
    if (every >= (this.ttl * 1000) / 3) return
    this.refreshTimer = setInterval(() => {
      if (this.lease !== lease) return
      // a failure here is the keep-alive stream's to report and recover from
      lease.keepaliveOnce().catch(() => {})
    }, every)
    this.refreshTimer.unref()
  }

  private lost(lease: Lease, error: Error): void {
    if (this.closed || this.recovering || this.lease !== lease) return
    this.recovering = true
    this.lease = undefined
    clearInterval(this.refreshTimer)
    lease.release()
    // etcd3 gives up a lease it could not keep alive for two TTLs; etcd answers TTL 0 for an expired or revoked one.
    const why = /lost connection/i.test(error.message)
      ? `expired: no keep-alive got through for ${2 * this.ttl}s`
      : error instanceof EtcdLeaseInvalidError
        ? 'expired or was revoked'
        : `was lost (${cleanMessage(error)})`
    this.report('lost', `lease ${hex(this.leaseId)} of ${this.key} ${why}; registering again`)
    this.recover().catch((error_: unknown) =>
      this.report('error', `cannot register ${this.key} again: ${errorMessage(error_)}`),
    )
  }

  private async recover(): Promise<void> {
    // One report per kind of failure, repeated at most every REPORT_REPEAT_MS while it lasts.
    let reported = {kind: '', at: 0}
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        const attached = await this.attach()
        if (this.closed) {
          attached.lease.revoke().catch(() => attached.lease.release())
          return
        }

        this.recovering = false
        this.keepAliveTrouble = false
        this.adopt(attached)
        this.report('restored', `${this.key} registered again with lease ${hex(attached.id)}`)
        return
      } catch (error) {
        if (this.closed) return
        const kind = error instanceof Error ? error.name : 'Error'
        if (kind !== reported.kind || Date.now() - reported.at >= REPORT_REPEAT_MS) {
          this.report('error', `cannot register ${this.key} again: ${errorMessage(error)}`)
          reported = {kind, at: Date.now()}
        }

        await sleep(backoffDelay(this.registry.options.retry, attempt), this.stop.signal)
      }
    }
  }

  private report(state: RegistrationState, detail: string): void {
    if (this.opts.onStateChange) this.opts.onStateChange(state, detail)
    else this.registry.options.log(`etcd: ${detail}`)
  }

  private serialized(): string {
    return JSON.stringify(this.current)
  }
}

/**
 * One etcd prefix watch feeding a snapshot watch: a range read at revision R, then a watch from R + 1 whose event
 * batches update the state. etcd3 reconnects the watch and resumes it by itself; after a reconnect the range is read
 * again (events the read already covers are skipped), which also covers a resumption that etcd3 got wrong.
 */
class PrefixWatch {
  stream?: AsyncIterableIterator<WatchEvent>
  private sink?: WatchSink
  private instances = new Map<string, ServiceInstance>()
  /** Events up to this revision are reflected in `instances` by the last range read. */
  private readRevision = 0
  private watcher?: Watcher
  /** Watch responses that arrive while a range read is in flight. */
  private buffered?: IWatchResponse[]
  private generation = 0
  private disconnected = false
  private stopped = false
  private stopping?: Promise<void>
  private readonly stopSignal = new AbortController()

  constructor(
    private readonly registry: EtcdRegistry,
    private readonly range: string,
  ) {}

  start(sink: WatchSink): void {
    this.sink = sink
    this.establish(true).catch((error: unknown) => this.fail(error))
  }

  /** Ends the stream as the registry closes. */
  async end(): Promise<void> {
    await this.stream?.return?.()
    await this.stop()
  }

  stop(): Promise<void> {
    if (this.stopping) return this.stopping
    this.stopped = true
    this.generation++
    this.stopSignal.abort()
    this.registry.forgetWatch(this)
    const {watcher} = this
    this.watcher = undefined
    this.stopping = watcher ? withTimeout(watcher.cancel(), WATCH_CANCEL_TIMEOUT_MS) : Promise.resolve()
    return this.stopping
  }

  /** Reads the range, publishes it, and watches from the next revision; retried until it works or fails for good. */
  private async establish(initial: boolean): Promise<void> {
    const generation = ++this.generation
    for (let attempt = 0; ; attempt++) {
      try {
        const {instances, revision} = await this.registry.readRange(this.range)
        if (this.stopped || generation !== this.generation) return
        this.instances = instances
        this.readRevision = revision
        this.buffered = undefined
        if (!initial) this.sink?.status('connected', `watching ${this.range} again from revision ${revision + 1}`)
        this.publish()
        this.attachWatcher(revision + 1)
        return
      } catch (error) {
        if (this.stopped || generation !== this.generation) return
        if (initial || !isTransient(error)) {
          this.fail(error)
          return
        }

        if (attempt === 0) this.sink?.status('reconnecting', `cannot read ${this.range}: ${formatError(error)}`)
        await sleep(backoffDelay(this.registry.options.retry, attempt), this.stopSignal.signal)
      }
    }
  }

  private attachWatcher(fromRevision: number): void {
    const watcher = this.registry.getClient().watch().prefix(this.range).startRevision(String(fromRevision)).watcher()
    this.watcher = watcher
    watcher.on('data', (response) => {
      if (this.watcher !== watcher) return
      if (this.buffered) this.buffered.push(response)
      else if (this.apply(response)) this.publish()
    })
    watcher.on('disconnected', (error) => {
      if (this.watcher !== watcher || this.disconnected) return
      this.disconnected = true
      this.generation++
      this.buffered = undefined
      this.sink?.status('reconnecting', `watch stream lost (${cleanMessage(error)}); resuming`)
    })
    watcher.on('connected', () => {
      if (this.watcher !== watcher || !this.disconnected) return
      this.disconnected = false
      this.resync().catch((error: unknown) => this.fail(error))
    })
    watcher.on('error', (error) => {
      // etcd cancelled the watch (its history was compacted past our revision, or access was revoked); etcd3 has
      // already dropped the watcher, so it is not cancelled again.
      if (this.watcher !== watcher) return
      this.watcher = undefined
      this.disconnected = false
      this.registry.options.log(`etcd: watch on ${this.range} was cancelled (${cleanMessage(error)}); reading it again`)
      this.establish(false).catch((error_: unknown) => this.fail(error_))
    })
  }

  /** After etcd3 resumed the watch: read the range again and keep only the newer of the replayed events. */
  private async resync(): Promise<void> {
    const generation = ++this.generation
    this.buffered = []
    let read: {instances: Map<string, ServiceInstance>; revision: number} | undefined
    try {
      read = await this.registry.readRange(this.range)
    } catch (error) {
      // The resumed stream alone is still correct unless etcd3 lost events; keep going with it.
      this.registry.options.log(`etcd: cannot read ${this.range} after reconnecting (${formatError(error)})`)
    }

    if (this.stopped || generation !== this.generation) return
    const pending = this.buffered ?? []
    this.buffered = undefined
    if (read) {
      this.instances = read.instances
      this.readRevision = read.revision
    }

    for (const response of pending) this.apply(response)
    this.sink?.status('connected', `watch on ${this.range} resumed at revision ${this.readRevision + 1}`)
    this.publish()
  }

  /** Applies one watch response; true when it changed something. */
  private apply(response: IWatchResponse): boolean {
    let changed = false
    for (const event of response.events) {
      if (Number(event.kv.mod_revision) <= this.readRevision) continue
      const key = event.kv.key.toString()
      const instance = event.type === 'Put' ? this.registry.decode(event.kv) : undefined
      if (instance) this.instances.set(key, instance)
      else this.instances.delete(key)
      changed = true
    }

    return changed
  }

  private publish(): void {
    this.sink?.publish([...this.instances.values()])
  }

  private fail(error: unknown): void {
    this.stop().catch(() => {})
    this.sink?.fail(this.registry.toBackendError(error))
  }
}

let ipServerNameMuted = false

/**
 * grpc-js sends a member's address as the TLS server name, and Node warns on stderr (DEP0123) when that is an IP
 * address; the user wrote that address and cannot change what grpc-js sends, so only that one warning is dropped.
 */
function muteIpServerNameWarning(): void {
  if (ipServerNameMuted) return
  ipServerNameMuted = true
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void
  process.emitWarning = ((...args: unknown[]) => {
    const [, type, code] = args
    const named = typeof type === 'object' && type !== null ? (type as {code?: unknown}).code : code
    if (named !== 'DEP0123') emit(...args)
  }) as typeof process.emitWarning
}

/** A member's recent failures; it is skipped while open, unless every member is: then calls go through as probes. */
class MemberBreaker {
  private failures = 0
  private openUntil = 0

  constructor(private readonly group: MemberBreaker[]) {}

  skip(now: number): boolean {
    return this.isOpen(now) && this.group.some((b) => !b.isOpen(now))
  }

  succeeded(): void {
    this.failures = 0
  }

  failed(): void {
    this.failures++
    this.openUntil = Date.now() + Math.min(BREAKER_MAX_MS, BREAKER_INITIAL_MS * 2 ** (this.failures - 1))
  }

  private isOpen(now: number): boolean {
    return now < this.openUntil
  }
}

/** A policy that runs a call once: a status probe reports the member as it is. */
function noRetry(): Policy {
  return {
    _altReturn: undefined as never,
    onSuccess: () => ({dispose() {}}),
    onFailure: () => ({dispose() {}}),
    execute: async <T>(fn: PolicyFn<T>, signal?: AbortSignal): Promise<T> =>
      fn({signal: signal ?? new AbortController().signal}),
  }
}

/** etcd3's per-member policy: a skipped member makes etcd3 try the next one at once. */
function memberPolicy(breaker: MemberBreaker): Policy {
  return {
    _altReturn: undefined as never,
    onSuccess: () => ({dispose() {}}),
    onFailure: () => ({dispose() {}}),
    async execute<T>(fn: PolicyFn<T>, signal?: AbortSignal): Promise<T> {
      if (breaker.skip(Date.now())) throw new MemberSkippedError('this member failed moments ago')
      try {
        const result = await fn({signal: signal ?? new AbortController().signal})
        breaker.succeeded()
        return result
      } catch (error) {
        if (error instanceof Error && isRecoverableError(error)) breaker.failed()
        throw error
      }
    },
  }
}

/** Retries transient failures on the next member, with backoff, within the operation's bounds. */
function retryPolicy(
  retry: RetryPolicy,
  maxAttempts: number,
  scope: AsyncLocalStorage<OperationScope>,
  closing: AbortSignal,
): Policy {
  return {
    _altReturn: undefined as never,
    onSuccess: () => ({dispose() {}}),
    onFailure: () => ({dispose() {}}),
    async execute<T>(fn: PolicyFn<T>, signal?: AbortSignal): Promise<T> {
      // The operation's signal also fires on close; calls outside an operation stop on close.
      const stop = signal ?? scope.getStore()?.signal ?? closing
      for (let attempt = 0; ; attempt++) {
        try {
          return await fn({signal: stop})
        } catch (error) {
          const retryable = error instanceof MemberSkippedError || (error instanceof Error && isRecoverableError(error))
          if (!retryable || attempt + 1 >= maxAttempts || stop.aborted) throw error
          await sleep(backoffDelay(retry, attempt), stop)
          if (stop.aborted) throw error
        }
      }
    },
  }
}

/** etcd3's watch reconnection backoff, following the backend's retry policy. */
function exponentialBackoff(retry: RetryPolicy, attempt: number): Backoff {
  return {
    duration: backoffDelay(retry, attempt),
    next() {
      return exponentialBackoff(retry, attempt + 1)
    },
  }
}

interface StatusAnswer {
  leader: string
}

/** A member's own status through its gRPC gateway, or undefined when it does not answer in time. */
async function probeStatus(url: string, timeoutMs: number): Promise<StatusAnswer | undefined> {
  const status = await gatewayPost(url, '/v3/maintenance/status', timeoutMs)
  if (!status) return undefined
  return {leader: typeof status.leader === 'string' ? status.leader : '0'}
}

/** One JSON request to a member's gateway; undefined unless it answers 200 with a JSON object in time. */
function gatewayPost(url: string, path: string, timeoutMs: number): Promise<Record<string, unknown> | undefined> {
  const target = new URL(path, url)
  const request = target.protocol === 'https:' ? https.request : http.request
  return new Promise((resolve) => {
    const req = request(
      target,
      {
        method: 'POST',
        agent: false,
        timeout: timeoutMs,
        headers: {'content-type': 'application/json'},
      },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          text += chunk
        })
        res.on('end', () => {
          try {
            const parsed: unknown = JSON.parse(text)
            resolve(res.statusCode === 200 && isRecord(parsed) ? parsed : undefined)
          } catch {
            resolve(undefined)
          }
        })
        res.on('error', () => resolve(undefined))
      },
    )
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(undefined))
    req.end('{}')
  })
}

/** Parses the value under `<prefix>/<service>/<id>`; a string says why it is not an instance. */
export function decodeInstance(prefix: string, key: string, text: string): ServiceInstance | string {
  const rest = key.startsWith(`${prefix}/`) ? key.slice(prefix.length + 1) : undefined
  const slash = rest?.indexOf('/') ?? -1
  if (rest === undefined || slash <= 0) return 'the key is not <prefix>/<service>/<id>'
  const service = rest.slice(0, slash)
  const id = rest.slice(slash + 1)
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return 'the value is not JSON'
  }

  if (!isRecord(value)) return 'the value is not a JSON object'
  if (value.service !== undefined && value.service !== service) return `the value names service ${shown(value.service)}`
  if (value.id !== undefined && value.id !== id) return `the value names id ${shown(value.id)}`
  const {address, health, meta, port, source, tags} = value
  if (typeof address !== 'string') return 'the value has no address'
  if (typeof port !== 'number' && typeof port !== 'string') return 'the value has no port'
  if (tags !== undefined && !(Array.isArray(tags) && tags.every((t) => typeof t === 'string')))
    return 'tags is not a list of strings'
  if (meta !== undefined && !(isRecord(meta) && Object.values(meta).every((v) => typeof v === 'string'))) {
    return 'meta is not an object of strings'
  }

  if (health !== undefined && !HEALTH_VALUES.includes(health as Health)) return `unknown health ${shown(health)}`
  if (source !== undefined && !isInstanceSource(source))
    return 'source is not {containerId, containerName, image, host}'
  try {
    return toInstance({
      service,
      id,
      address,
      port: port as number,
      tags: tags as string[] | undefined,
      meta: meta as Record<string, string> | undefined,
      health: (health as Health | undefined) ?? 'unknown',
      source,
    })
  } catch (error) {
    return errorMessage(error)
  }
}

/** A parsed JSON value for a message; String() would throw on an object such as {"toString": []}. */
function shown(value: unknown): string {
  return JSON.stringify(value) ?? 'undefined'
}

type Verdict = {cause: string; hint: string} | undefined

/**
 * Opens a TLS connection as gRPC would, to learn why gRPC could not: a refused or missing client certificate, an
 * untrusted server certificate, or a server that does (or does not) speak TLS. Undefined when nothing is wrong with
 * TLS (or the member does not answer at all).
 */
export function probeTls(
  url: URL,
  tls: TlsFiles | undefined,
  pem: {ca?: Buffer; cert?: Buffer; key?: Buffer} = {},
  timeoutMs = PROBE_TIMEOUT_MS,
): Promise<Verdict> {
  const host = url.hostname.replaceAll(/^\[|\]$/g, '')
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined
    // an IP address is no server name (RFC 6066): node sends none for it
    const socket = tlsConnect({
      host,
      port: Number(url.port),
      ca: pem.ca,
      cert: pem.cert,
      key: pem.key,
      ALPNProtocols: ['h2'],
    })
    const finish = (verdict: Verdict): void => {
      clearTimeout(timer)
      socket.destroy()
      resolve(verdict)
    }

    timer = setTimeout(() => finish(undefined), timeoutMs)
    socket.on('secureConnect', () => {
      if (!tls) {
        finish({cause: 'the server speaks TLS', hint: 'use etcds://host:2379 (with --cacert for a private CA)'})
        return
      }

      // TLS 1.3 servers refuse a missing client certificate only after the handshake, with an alert
      clearTimeout(timer)
      timer = setTimeout(() => finish(undefined), Math.min(500, timeoutMs))
    })
    socket.on('error', (error: NodeJS.ErrnoException) =>
      finish(tlsFailure(`${error.code ?? ''} ${error.message}`, tls)),
    )
  })
}

/** What a TLS error says, and the flag that fixes it; undefined when it is not about TLS. */
export function tlsFailure(message: string, tls: TlsFiles | undefined): Verdict {
  if (/ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ETIMEDOUT|ENOTFOUND|EPIPE/.test(message)) return undefined
  if (/wrong version number|packet length too long|http request|WRONG_VERSION/i.test(message)) {
    return tls ? {cause: 'the server does not speak TLS', hint: 'use etcd://host:2379 for a plain endpoint'} : undefined
  }

  // a plain client that got this far met a TLS server
  if (!tls) return {cause: 'the server speaks TLS', hint: 'use etcds://host:2379 (with --cacert for a private CA)'}
  // Go's TLS server answers a missing client certificate with bad_certificate (42) or certificate_required (116)
  if (
    /certificate required|bad certificate|unknown ca|certificate unknown|unsupported certificate|alert number (4[2-9]|116)/i.test(
      message,
    )
  ) {
    return tls.cert
      ? {
          cause: 'the server refused the client certificate',
          hint: 'pass a --cert/--key pair signed by a CA the server trusts (its --trusted-ca-file)',
        }
      : {cause: 'the server requires a client certificate', hint: 'pass --cert and --key (ETCDCTL_CERT, ETCDCTL_KEY)'}
  }

  if (/self[- ]signed|unable to (get|verify)|verify failed|CERT_|ALTNAME|Hostname\/IP|certificate/i.test(message)) {
    return {
      cause: `the server's certificate is not trusted (${message.trim()})`,
      hint: 'pass the CA that signed it with --cacert (ETCDCTL_CACERT); its SAN must name the address you use',
    }
  }

  return undefined
}

/** gRPC messages without the status prefix and etcd3's class-name prefix. */
function cleanMessage(error: unknown): string {
  const message = errorMessage(error)
  // gRPC: "14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:2379. …"
  const connect = /Last error: (?:Error: )?(.+?)\.?(?: Resolution note:.*)?$/.exec(message)
  if (connect) return connect[1] && connect[1] !== 'null' ? connect[1] : 'no connection established'
  return message
    .replace(/^\w+Error: /, '')
    .replace(/^\d+ [A-Z_]+: /, '')
    .replace(/ \(\d{4}-\d\d-\d\dT[\d:.]+Z\)$/, '')
    .trim()
}

function urlAddress(url: string): string {
  try {
    return new URL(url).host
  } catch {
    return url
  }
}

function hex(id: string): string {
  try {
    return BigInt(id).toString(16)
  } catch {
    return id
  }
}

function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(1))}s`
}

async function withTimeout(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms)
  })
  try {
    await Promise.race([promise.catch(() => {}), timeout])
  } finally {
    clearTimeout(timer)
  }
}
