import {createHash} from 'node:crypto'
import type {Socket} from 'node:net'
import zookeeper, {type ACL, type Client, type Event, type Stat, type State} from 'node-zookeeper-client'

import {tcpCommand} from '../cluster/probe.js'
import {formatDuration} from '../duration.js'
import {isRecord} from '../guards.js'
import {within} from '../timeout.js'
import {BackendError, BackendUnavailableError, errorMessage, isTransient, UserError} from '../errors.js'
import {sortInstances} from './diff.js'
import {backoffDelay, type BackendOptions, sleep} from './options.js'
import {type BackendSpec, type Credentials, describeBackend, formatHosts} from './spec.js'
import {effectiveZkAcl, type ZkAclSpec} from './zk-acl.js'
import type {
  ClusterInfo,
  ClusterMember,
  Health,
  InstanceChanges,
  InstanceInput,
  InstanceSource,
  MemberRole,
  RegisterOptions,
  RegistrationHandle,
  RegistrationState,
  ServiceInstance,
  ServiceSummary,
  WatchEvent,
  WatchOptions,
} from './types.js'
import {HEALTH_VALUES} from './types.js'
import {applyChanges, defaultInstanceId, toInstance, validateServiceName} from './validate.js'
import {snapshotWatch, type WatchSink} from './watch.js'
import type {LegacyRegistry} from './legacy.js'

type ZkSpec = Extract<BackendSpec, {kind: 'zk'}>
type Watcher = (event: Event) => void
type Done<T> = (error: Error | zookeeper.Exception | null, value?: T) => void

export const ZK_DEFAULT_SESSION_TIMEOUT_MS = 10_000
/** Meta key that names the container-side port, written as registrator's PrivatePort. */
export const PRIVATE_PORT_META = 'private_port'
const BACKEND = 'zookeeper'
/** Pause between rounds over all members when none answers (the library's default is 1 s). */
const SPIN_DELAY_MS = 250
const FOUR_LETTER_TIMEOUT_MS = 2000
const CLOSE_WAIT_MS = 1000
const TRANSIENT_CODES = new Set([
  zookeeper.Exception.CONNECTION_LOSS,
  zookeeper.Exception.OPERATION_TIMEOUT,
  zookeeper.Exception.SESSION_EXPIRED,
])

/** The payload of `<base>/<service>/<address>:<port>`: registrator's fields, then svc's own. */
interface Payload extends ServiceInstance {
  Name: string
  IP: string
  PublicPort: number
  PrivatePort: number
  ContainerID: string
  Tags: string[]
  Attrs: Record<string, string>
}

/**
 * The registry on a ZooKeeper ensemble: one ephemeral znode per instance, so liveness is the session's. One
 * session serves every request, watch and registration of this object; when it expires, a new one re-creates
 * the registrations and re-arms the watches.
 */
export class ZooKeeperRegistry implements LegacyRegistry {
  readonly kind = 'zk'
  readonly nativeChecks = false
  readonly description: string
  private readonly base: string
  private readonly hosts: string
  private readonly auth?: Credentials
  private readonly acl: ACL[]
  private readonly options: BackendOptions
  private readonly shutdown = new AbortController()
  private readonly handles = new Set<ZooKeeperHandle>()
  private readonly loops = new Set<WatchLoop>()
  private readonly warned = new Set<string>()
  private session?: Session
  private opening?: Promise<Session>
  private recovering?: Promise<void>
  private lostTimer?: NodeJS.Timeout
  private sessionTimeoutMs = ZK_DEFAULT_SESSION_TIMEOUT_MS
  private closed = false

  constructor(spec: ZkSpec, options: BackendOptions) {
    if (spec.hosts.some((h) => h.host.includes(':'))) {
      throw new UserError(
        'the ZooKeeper client cannot reach IPv6 addresses',
        'name the members by IPv4 address or host name',
      )
    }

    this.base = spec.base
    this.hosts = formatHosts(spec.hosts)
    this.auth = spec.auth
    this.acl = toAcl(effectiveZkAcl(spec.acl, spec.auth !== undefined), spec.auth)
    this.description = describeBackend(spec)
    this.options = options
  }

  async ping(): Promise<void> {
    await this.run(`exists ${this.base}`, (s) => s.exists(this.base))
  }

  async register(input: InstanceInput, opts: RegisterOptions = {}): Promise<RegistrationHandle> {
    const instance = toInstance(input)
    if (opts.ttlMs !== undefined) await this.useSessionTimeout(opts.ttlMs)
    const handle = new ZooKeeperHandle(this.handleHost(), instance, opts, this.nodePath(instance))
    await this.run(`register ${handle.path}`, (s) => this.createNode(s, handle))
    this.handles.add(handle)
    return handle
  }

  async deregister(service: string, id: string): Promise<boolean> {
    validateServiceName(service)
    // a remove whose answer was lost (a member went away) may have been applied: a retry that then finds
    // nothing reports the removal it made, not "not registered"
    let issued = false
    const removed = await this.run(`deregister ${service} ${id}`, async (s) => {
      const dir = this.servicePath(service)
      const children = await s.children(dir)
      if (!children) return issued
      const nodes = await Promise.all(
        children.map(async (child) => ({child, node: await this.readNode(s, service, child)})),
      )
      const target =
        nodes.find(({node}) => node !== 'gone' && node.instance?.id === id) ?? nodes.find(({child}) => child === id)
      if (!target) return issued
      issued = true
      if (!(await s.remove(`${dir}/${target.child}`))) return false
      await s.removeIfEmpty(dir)
      return true
    })
    for (const handle of this.handles) {
      if (handle.instance.service === service && handle.instance.id === id) this.forget(handle)
    }

    return removed
  }

  async listServices(): Promise<ServiceSummary[]> {
    return this.run(`list ${this.base}`, async (s) => {
      const services = (await s.children(this.base)) ?? []
      const summaries = await Promise.all(
        services.map(async (name): Promise<ServiceSummary> => {
          const instances = await this.readService(s, name)
          const passing = instances.filter((i) => i.health === 'passing').length
          return {name, instances: instances.length, passing}
        }),
      )
      return summaries.filter((s) => s.instances > 0).sort((a, b) => a.name.localeCompare(b.name))
    })
  }

  async listInstances(service: string): Promise<ServiceInstance[]> {
    validateServiceName(service)
    const instances = await this.run(`list ${this.servicePath(service)}`, (s) => this.readService(s, service))
    return sortInstances(instances)
  }

  watch(service?: string, opts: WatchOptions = {}): AsyncIterableIterator<WatchEvent> {
    if (service !== undefined) validateServiceName(service)
    const loop = new WatchLoop(this.watchHost(), service)
    const stream = snapshotWatch(opts, undefined, (sink) => loop.start(sink))
    loop.stream = stream
    return stream
  }

  async cluster(): Promise<ClusterInfo> {
    const members = await Promise.all(
      this.hosts.split(',').map(async (address): Promise<ClusterMember> => {
        const colon = address.lastIndexOf(':')
        const timeout = Math.min(FOUR_LETTER_TIMEOUT_MS, this.options.requestTimeoutMs)
        const answer = await tcpCommand(
          address.slice(0, colon),
          Number(address.slice(colon + 1)),
          'srvr',
          timeout,
        ).catch(() => '')
        return {name: address, address, role: roleOf(answer), reachable: answer !== ''}
      }),
    )
    const leader = members.find((m) => m.role === 'leader')?.address
    return leader ? {backend: 'zk', members, leader} : {backend: 'zk', members}
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    clearTimeout(this.lostTimer)
    for (const loop of this.loops) loop.end()
    for (const handle of this.handles) handle.kept = false
    this.handles.clear()
    this.shutdown.abort()
    const {opening, session} = this
    this.session = undefined
    // closing the session removes its ephemeral znodes at once
    await Promise.all([session?.close(), opening?.then((s) => s.close()).catch(() => {})])
  }

  private servicePath(service: string): string {
    return `${this.base}/${service}`
  }

  private nodePath(instance: ServiceInstance): string {
    return `${this.servicePath(instance.service)}/${instance.address}:${instance.port}`
  }

  /** The session to use, opened on first use and after expiry; the first contact is bounded by connectTimeoutMs. */
  private live(): Promise<Session> {
    if (this.closed) return Promise.reject(closedError())
    if (this.session && !this.session.dead) return Promise.resolve(this.session)
    this.opening ??= this.open().finally(() => {
      this.opening = undefined
    })
    return this.opening
  }

  private async open(): Promise<Session> {
    const session = new Session(this.hosts, this.sessionTimeoutMs, this.options.log, this.acl, this.auth)
    const timeoutMs = this.options.connectTimeoutMs
    try {
      await session.connect(timeoutMs, this.shutdown.signal)
    } catch (error) {
      await session.close()
      if (this.closed) throw closedError()
      if (error instanceof Error && error.message === zookeeper.State.AUTH_FAILED.name)
        throw authFailed(`connect to ${this.hosts}`, error)
      throw new BackendUnavailableError(BACKEND, this.hosts, `no answer after ${formatDuration(timeoutMs)}`, error)
    }

    if (this.closed) {
      await session.close()
      throw closedError()
    }

    session.onChange = (change) => this.onSessionChange(session, change)
    this.session = session
    const negotiated = session.timeoutMs
    if (negotiated !== this.sessionTimeoutMs) {
      this.warnOnce(
        'negotiated',
        `${BACKEND}: the ensemble set the session timeout to ${negotiated} ms instead of ${this.sessionTimeoutMs} ms (servers allow 2 to 20 ticks)`,
      )
    }

    return session
  }

  /** A register's ttl is the session timeout; it can change only while the session serves nothing else. */
  private async useSessionTimeout(ttlMs: number): Promise<void> {
    const wanted = Math.max(1, Math.round(ttlMs))
    if (wanted === this.sessionTimeoutMs) return
    const idle = this.handles.size === 0 && this.loops.size === 0 && !this.opening && !this.recovering
    if (idle) {
      this.sessionTimeoutMs = wanted
      const old = this.session
      this.session = undefined
      await old?.close()
      return
    }

    this.warnOnce(
      `ttl:${wanted}`,
      `${BACKEND}: this registry's session already has a ${this.sessionTimeoutMs} ms timeout; a ttl of ${wanted} ms needs a registry of its own`,
    )
  }

  /**
   * Runs one request, retrying transient failures (connection loss, fail-over) within requestTimeoutMs.
   * `pinned` keeps a watch's reads on the session that holds its watchers.
   */
  private async run<T>(what: string, fn: (session: Session) => Promise<T>, pinned?: Session): Promise<T> {
    const {requestTimeoutMs, retry} = this.options
    const deadline = Date.now() + requestTimeoutMs
    for (let attempt = 0; ; attempt++) {
      const session = pinned ?? (await this.live())
      try {
        return await within(fn(session), deadline - Date.now(), () =>
          zkError(`${what}: no answer within ${formatDuration(requestTimeoutMs)}`, true),
        )
      } catch (error) {
        const failure = toBackendError(error, what, this.auth)
        const wait = backoffDelay(retry, attempt)
        const retryable = isTransient(failure) && !this.closed && !(pinned?.dead ?? false)
        if (!retryable || attempt >= retry.attempts || Date.now() + wait >= deadline) throw failure
        await sleep(wait, this.shutdown.signal)
      }
    }
  }

  /** Creates the handle's ephemeral znode on `s`; a stale one of the same instance (another session's) is replaced. */
  private async createNode(s: Session, handle: ZooKeeperHandle): Promise<void> {
    const {path} = handle
    const data = encodePayload(handle.instance)
    for (let round = 0; round < 5; round++) {
      const created = await s.create(path, data)
      if (created === 'no-parent') {
        await s.mkdirp(this.servicePath(handle.instance.service))
        continue
      }

      if (created === 'created') {
        handle.owner = s
        return
      }

      const existing = await s.data(path)
      if (!existing) continue
      if (existing.stat.ephemeralOwner.equals(s.id)) {
        // ours already: an earlier attempt got through before its answer was lost
        await s.setData(path, data)
        handle.owner = s
        return
      }

      const other = decodePayload(handle.instance.service, path.slice(path.lastIndexOf('/') + 1), existing.data)
      if (other?.id !== handle.instance.id) {
        const {address, port, service} = handle.instance
        const holder = other ? `instance "${other.id}"` : 'a znode svc cannot read'
        throw new UserError(
          `${address}:${port} of ${service} is already registered as ${holder} (${path})`,
          other ? `deregister it first: svc deregister ${service} ${other.id}` : `remove ${path} first`,
        )
      }

      await s.remove(path, existing.stat.version)
    }

    throw zkError(`register ${path}: the znode kept changing`, true)
  }

  private async readService(s: Session, service: string, watcher?: Watcher): Promise<ServiceInstance[]> {
    const children = (await s.children(this.servicePath(service), watcher)) ?? []
    const nodes = await Promise.all(children.map((child) => this.readNode(s, service, child, watcher)))
    return nodes.flatMap((n) => (n !== 'gone' && n.instance ? [n.instance] : []))
  }

  /** One instance znode; `instance` is undefined (and a warning logged once) when its payload is not svc's or registrator's. */
  private async readNode(
    s: Session,
    service: string,
    child: string,
    watcher?: Watcher,
  ): Promise<'gone' | {instance?: ServiceInstance}> {
    const path = `${this.servicePath(service)}/${child}`
    const node = await s.data(path, watcher)
    if (!node) return 'gone'
    const instance = decodePayload(service, child, node.data)
    if (!instance) {
      const json = isJson(node.data)
      this.warnOnce(
        `${path}@${node.stat.mzxid.toString('hex')}`,
        `${BACKEND}: skipping ${path}: its payload is ${json ? 'JSON without an address and port' : 'not JSON'}`,
      )
    }

    return {instance}
  }

  private onSessionChange(session: Session, change: SessionChange): void {
    if (session !== this.session || this.closed) return
    switch (change) {
      case 'disconnected': {
        this.options.log(`${BACKEND}: lost the connection to member ${session.member}; reconnecting`)
        clearTimeout(this.lostTimer)
        // the ensemble ends a session it has not heard from for its timeout: say so then
        this.lostTimer = setTimeout(
          () => {
            const why = `no member answered for ${formatDuration(session.timeoutMs)}; the session has probably expired`
            for (const handle of this.handles) handle.lose(why)
          },
          Math.max(0, session.lastRead + session.timeoutMs - Date.now()),
        )
        this.lostTimer.unref()
        for (const loop of this.loops) loop.disconnected(`lost member ${session.member}`)
        break
      }

      case 'connected': {
        clearTimeout(this.lostTimer)
        this.options.log(`${BACKEND}: reconnected to member ${session.member}`)
        const detail = `reconnected to member ${session.member} before session 0x${session.idHex} expired`
        for (const handle of this.handles) handle.restore(detail)
        for (const loop of this.loops) loop.connected(session, `member ${session.member}`)
        break
      }

      case 'expired': {
        clearTimeout(this.lostTimer)
        this.session = undefined
        const detail = `session 0x${session.idHex} expired`
        this.options.log(`${BACKEND}: ${detail}; opening a new session`)
        session.close().catch(() => {})
        for (const handle of this.handles) handle.lose(detail)
        for (const loop of this.loops) loop.expired(detail)
        this.recovering ??= this.recover().finally(() => {
          this.recovering = undefined
        })
        break
      }
    }
  }

  /** Opens a new session after expiry, re-creates every registration on it and re-arms the watches, retrying with backoff. */
  private async recover(): Promise<void> {
    let notified: Session | undefined
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        const session = await this.live()
        const failures = await Promise.all(
          [...this.handles].filter((h) => h.owner !== session).map((h) => this.restoreHandle(session, h)),
        )
        if (notified !== session && !this.closed) {
          notified = session
          for (const loop of this.loops)
            loop.connected(session, `member ${session.member} (new session 0x${session.idHex})`)
        }

        const failure = failures.find((f) => f !== undefined)
        if (failure !== undefined) throw failure
        if ([...this.handles].every((h) => h.owner === session)) return
      } catch (error) {
        if (this.closed) return
        const why = errorMessage(error)
        this.options.log(`${BACKEND}: cannot restore the registrations yet: ${why}`)
        for (const handle of this.handles) if (handle.lost) handle.report('error', why)
        await sleep(backoffDelay(this.options.retry, attempt), this.shutdown.signal)
      }
    }
  }

  /** Re-creates one registration on a new session; a transient failure is returned for another round. */
  private async restoreHandle(session: Session, handle: ZooKeeperHandle): Promise<unknown> {
    try {
      await this.run(`re-create ${handle.path}`, (s) => this.createNode(s, handle), session)
      // closed while its znode was being re-created
      if (!handle.kept) await this.run(`deregister ${handle.path}`, (s) => s.remove(handle.path), session)
      handle.restore(`re-created ${handle.path} on session 0x${session.idHex}`)
      return undefined
    } catch (error) {
      if (isTransient(error)) return error
      handle.report('error', errorMessage(error))
      this.forget(handle)
      return undefined
    }
  }

  private forget(handle: ZooKeeperHandle): void {
    handle.kept = false
    this.handles.delete(handle)
  }

  private warnOnce(key: string, message: string): void {
    if (this.warned.has(key)) return
    this.warned.add(key)
    this.options.log(message)
  }

  private handleHost(): HandleHost {
    return {
      rewrite: async (handle) => {
        const session = this.session
        // while the session is being replaced, the re-created znode carries the current health
        if (!session || handle.owner !== session) return
        try {
          await this.run(
            `set health of ${handle.path}`,
            async (s) => {
              if (!(await s.setData(handle.path, encodePayload(handle.instance)))) {
                this.options.log(`${BACKEND}: ${handle.path} was removed by someone else; registering it again`)
                await this.createNode(s, handle)
              }
            },
            session,
          )
        } catch (error) {
          if (session === this.session) throw error
        }
      },
      close: async (handle, deregister) => {
        this.forget(handle)
        const owner = handle.owner
        // a znode of a session that ended is gone already
        if (!deregister || !owner || owner.dead || this.closed) return
        await this.run(
          `deregister ${handle.path}`,
          async (s) => {
            const node = await s.data(handle.path)
            if (!node || !node.stat.ephemeralOwner.equals(s.id)) return
            if (await s.remove(handle.path, node.stat.version))
              await s.removeIfEmpty(this.servicePath(handle.instance.service))
          },
          owner,
        )
      },
    }
  }

  private watchHost(): WatchHost {
    return {
      base: this.base,
      retry: (attempt) => backoffDelay(this.options.retry, attempt),
      live: () => this.live(),
      recovering: () => this.recovering !== undefined,
      run: (what, fn, session) => this.run(what, fn, session),
      readNode: (s, service, child, watcher) => this.readNode(s, service, child, watcher),
      attach: (loop) => this.loops.add(loop),
      detach: (loop) => this.loops.delete(loop),
    }
  }
}

interface HandleHost {
  /** Writes the handle's current instance into its znode. */
  rewrite(handle: ZooKeeperHandle): Promise<void>
  close(handle: ZooKeeperHandle, deregister: boolean): Promise<void>
}

/** One registration: an ephemeral znode this process re-creates whenever its session is replaced. */
class ZooKeeperHandle implements RegistrationHandle {
  instance: ServiceInstance
  readonly path: string
  /** The session whose ephemeral znode holds this instance. */
  owner?: Session
  kept = true
  lost = false
  private readonly host: HandleHost
  private readonly opts: RegisterOptions

  constructor(host: HandleHost, instance: ServiceInstance, opts: RegisterOptions, path: string) {
    this.host = host
    this.instance = instance
    this.opts = opts
    this.path = path
  }

  async setHealth(health: Health): Promise<void> {
    if (health === this.instance.health) return
    this.instance = {...this.instance, health}
    if (this.kept) await this.host.rewrite(this)
  }

  async update(changes: InstanceChanges): Promise<void> {
    this.instance = applyChanges(this.instance, changes)
    if (this.kept) await this.host.rewrite(this)
  }

  async close(opts: {deregister?: boolean} = {}): Promise<void> {
    if (!this.kept) return
    await this.host.close(this, opts.deregister !== false)
  }

  lose(detail: string): void {
    if (this.lost) return
    this.lost = true
    this.report('lost', detail)
  }

  restore(detail: string): void {
    if (!this.lost) return
    this.lost = false
    this.report('restored', detail)
  }

  report(state: RegistrationState, detail: string): void {
    if (!this.kept) return
    try {
      this.opts.onStateChange?.(state, detail)
    } catch {
      // a failing listener must not stop the recovery of the other registrations
    }
  }
}

interface WatchHost {
  base: string
  retry(attempt: number): number
  live(): Promise<Session>
  recovering(): boolean
  run<T>(what: string, fn: (session: Session) => Promise<T>, session: Session): Promise<T>
  readNode(s: Session, service: string, child: string, watcher: Watcher): Promise<'gone' | {instance?: ServiceInstance}>
  attach(loop: WatchLoop): void
  detach(loop: WatchLoop): void
}

/**
 * Follows one service (or all of them) with native watches: a children watch on the service's znode (an exists
 * watch while it is missing), a data watch on every instance, and for all services a children watch on the base.
 * Each notification re-reads only what changed and publishes the full state; a (re)connection re-reads everything.
 */
class WatchLoop {
  stream?: AsyncIterableIterator<WatchEvent>
  private sink?: WatchSink
  private session?: Session
  private watcher?: {session: Session; fn: Watcher}
  private readonly host: WatchHost
  private readonly service?: string
  /** service -> znode name -> instance (undefined: unreadable payload). */
  private readonly cache = new Map<string, Map<string, ServiceInstance | undefined>>()
  private readonly abort = new AbortController()
  private full = true
  private baseChanged = false
  private readonly servicesChanged = new Set<string>()
  private readonly nodesChanged = new Set<string>()
  private running = false
  private stopped = false
  private failures = 0

  constructor(host: WatchHost, service: string | undefined) {
    this.host = host
    this.service = service
    if (service !== undefined) this.cache.set(service, new Map())
  }

  start(sink: WatchSink): () => void {
    this.sink = sink
    this.host.attach(this)
    this.host.live().then(
      (session) => {
        if (!this.stopped && !this.session) this.connected(session, `member ${session.member}`)
      },
      (error: unknown) => {
        // during recovery the registry reports the new session when it has one
        if (!this.stopped && !(isTransient(error) && this.host.recovering())) sink.fail(error)
      },
    )
    return () => this.stop()
  }

  /** Ends the stream (the registry is closing). */
  end(): void {
    this.stream?.return?.().catch(() => {})
    this.stop()
  }

  connected(session: Session, detail: string): void {
    if (this.stopped) return
    this.session = session
    this.sink?.status('connected', detail)
    this.full = true
    this.schedule()
  }

  disconnected(detail: string): void {
    if (!this.stopped) this.sink?.status('reconnecting', detail)
  }

  expired(detail: string): void {
    if (this.stopped) return
    this.session = undefined
    this.sink?.status('session-lost', detail)
  }

  private stop(): void {
    if (this.stopped) return
    this.stopped = true
    this.abort.abort()
    this.host.detach(this)
  }

  private watcherFor(session: Session): Watcher {
    if (this.watcher?.session !== session) {
      this.watcher = {session, fn: (event) => this.onEvent(session, event)}
    }

    return this.watcher.fn
  }

  private onEvent(session: Session, event: Event): void {
    if (session !== this.session || this.stopped) return
    const {base} = this.host
    const path = event.getPath()
    if (path === base) {
      this.baseChanged = true
    } else if (path.startsWith(`${base}/`)) {
      const [service, child] = path.slice(base.length + 1).split('/')
      if (service === undefined || (this.service !== undefined && service !== this.service)) return
      if (child === undefined) this.servicesChanged.add(service)
      else this.nodesChanged.add(`${service}/${child}`)
    } else {
      return
    }

    this.schedule()
  }

  private schedule(): void {
    if (this.running || this.stopped) return
    this.running = true
    this.pump().catch((error: unknown) => this.sink?.fail(error))
  }

  private async pump(): Promise<void> {
    try {
      while (!this.stopped) {
        const session = this.session
        const pending = this.full || this.baseChanged || this.servicesChanged.size > 0 || this.nodesChanged.size > 0
        if (!session || session.dead || !pending) return
        try {
          await this.refresh(session)
          this.failures = 0
          if (session === this.session && !this.stopped) this.sink?.publish(this.instances())
        } catch (error) {
          if (this.stopped) return
          if (!isTransient(error)) {
            this.sink?.fail(error)
            return
          }

          this.full = true
          // a connection that is down comes back with a 'connected' call, which resumes this loop
          if (session !== this.session || !session.connected) return
          await sleep(this.host.retry(this.failures++), this.abort.signal)
        }
      }
    } finally {
      this.running = false
    }
  }

  /** Reads what the notifications since the last pass said changed (everything after a (re)connection). */
  private async refresh(session: Session): Promise<void> {
    const full = this.full
    const services = new Set(this.servicesChanged)
    const nodes = new Set(this.nodesChanged)
    const listBase = this.service === undefined && (full || this.baseChanged)
    this.full = false
    this.baseChanged = false
    this.servicesChanged.clear()
    this.nodesChanged.clear()
    const watcher = this.watcherFor(session)
    const {base} = this.host
    try {
      if (listBase) {
        const names = await this.host.run(`watch ${base}`, (s) => this.children(s, base, watcher), session)
        for (const name of this.cache.keys()) if (!names.includes(name)) this.cache.delete(name)
        for (const name of names) {
          if (this.cache.has(name)) continue
          this.cache.set(name, new Map())
          services.add(name)
        }
      }

      const listed = full ? [...this.cache.keys()] : [...services].filter((s) => this.cache.has(s))
      await Promise.all(listed.map((service) => this.refreshService(session, watcher, service, full)))
      await Promise.all(
        [...nodes].map(async (key) => {
          const [service = '', child = ''] = key.split('/')
          const known = this.cache.get(service)
          if (!known || full) return
          await this.refreshNode(session, watcher, known, service, child)
        }),
      )
    } catch (error) {
      // nothing is lost: the next pass reads everything again
      this.full = true
      throw error
    }
  }

  private async refreshService(session: Session, watcher: Watcher, service: string, full: boolean): Promise<void> {
    const path = `${this.host.base}/${service}`
    const children = await this.host.run(`watch ${path}`, (s) => this.children(s, path, watcher), session)
    const known = this.cache.get(service)
    if (!known) return
    for (const child of known.keys()) if (!children.includes(child)) known.delete(child)
    const unread = children.filter((child) => full || !known.has(child))
    await Promise.all(unread.map((child) => this.refreshNode(session, watcher, known, service, child)))
  }

  private async refreshNode(
    session: Session,
    watcher: Watcher,
    known: Map<string, ServiceInstance | undefined>,
    service: string,
    child: string,
  ): Promise<void> {
    const path = `${this.host.base}/${service}/${child}`
    const node = await this.host.run(`watch ${path}`, (s) => this.host.readNode(s, service, child, watcher), session)
    if (node === 'gone') known.delete(child)
    else known.set(child, node.instance)
  }

  /** Children with a watch; while the znode is missing, an exists watch says when it appears. */
  private async children(s: Session, path: string, watcher: Watcher): Promise<string[]> {
    // in the all-services watch, the base's children watch already covers a service's znode coming and going
    const waitForCreation = path === this.host.base || this.service !== undefined
    for (let round = 0; round < 3; round++) {
      const children = await s.children(path, watcher)
      if (children) return children
      if (!waitForCreation || !(await s.exists(path, watcher))) return []
    }

    return []
  }

  private instances(): ServiceInstance[] {
    const all: ServiceInstance[] = []
    for (const known of this.cache.values()) {
      for (const instance of known.values()) if (instance) all.push(instance)
    }

    return all
  }
}

type SessionChange = 'connected' | 'disconnected' | 'expired'

/** The parts of node-zookeeper-client's connection manager svc needs and the library does not expose. */
interface ConnectionInternals {
  socket?: Socket
  state: number
  connectTimeoutHandler?: NodeJS.Timeout | null
  setState(state: number): void
}

/** ConnectionManager.STATES in node-zookeeper-client. */
const CM_CLOSING = -1
const CM_CLOSED = -2

function internals(client: Client): ConnectionInternals | undefined {
  const cm: unknown = (client as unknown as {connectionManager?: unknown}).connectionManager
  if (typeof cm === 'object' && cm !== null && 'setState' in cm && typeof cm.setState === 'function') {
    return cm as ConnectionInternals
  }

  return undefined
}

/**
 * One ZooKeeper session over node-zookeeper-client, which fails over between the members by itself. Adds what the
 * library lacks: a read timeout (a member that stops answering without closing the connection is left for the
 * next one, as the Java client does), and requests that fail when the session ends instead of hanging.
 */
class Session {
  readonly client: Client
  connected = false
  expired = false
  closed = false
  member = ''
  onChange?: (change: SessionChange) => void
  private readonly log: (message: string) => void
  private readonly inflight = new Set<(error: unknown) => void>()
  private watchdog?: NodeJS.Timeout
  private socket?: Socket
  /** When the current member last sent anything. */
  lastRead = 0
  /** How long one member may take to answer the handshake: the Java client's share of the timeout per member. */
  private readonly handshakeMs: number

  /** The ACL of every znode this session creates. */
  private readonly acl: ACL[]

  constructor(hosts: string, timeoutMs: number, log: (message: string) => void, acl: ACL[], auth?: Credentials) {
    this.log = log
    this.acl = acl
    this.handshakeMs = Math.max(500, Math.floor(timeoutMs / hosts.split(',').length))
    this.client = zookeeper.createClient(hosts, {sessionTimeout: timeoutMs, spinDelay: SPIN_DELAY_MS, retries: 0})
    // the library sends it again on every (re)connection of this session; a new session gets it from its constructor
    if (auth) this.client.addAuthInfo('digest', Buffer.from(`${auth.user}:${auth.password}`))
    this.client.on('state', (state: State) => this.onState(state))
  }

  get dead(): boolean {
    return this.expired || this.closed
  }

  get id(): Buffer {
    return this.client.getSessionId()
  }

  get idHex(): string {
    return this.id.toString('hex')
  }

  /** The timeout the ensemble granted (the requested one before the first connection). */
  get timeoutMs(): number {
    return this.client.getSessionTimeout()
  }

  connect(timeoutMs: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const finish = (error?: Error): void => {
        clearTimeout(timer)
        signal.removeEventListener('abort', onAbort)
        this.client.removeListener('state', onState)
        if (error) reject(error)
        else resolve()
      }

      const onState = (state: State): void => {
        if (state === zookeeper.State.SYNC_CONNECTED) finish()
        else if (state === zookeeper.State.EXPIRED || state === zookeeper.State.AUTH_FAILED)
          finish(new Error(state.name))
      }

      const onAbort = (): void => finish(closedError())
      const timer = setTimeout(() => finish(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs)
      signal.addEventListener('abort', onAbort, {once: true})
      this.client.on('state', onState)
      this.client.connect()
      this.startWatchdog()
    })
  }

  /** Closes the session (its ephemeral znodes go with it) and releases the socket and timers, even when no member answers. */
  async close(): Promise<void> {
    if (this.closed) return
    const wasConnected = this.connected && !this.expired
    this.closed = true
    this.connected = false
    clearInterval(this.watchdog)
    this.abandon(closedError())
    const cm = internals(this.client)
    if (wasConnected) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, CLOSE_WAIT_MS)
        const onState = (state: State): void => {
          if (state === zookeeper.State.DISCONNECTED) done()
        }

        function done(): void {
          clearTimeout(timer)
          resolve()
        }

        this.client.on('state', onState)
        this.client.close()
      })
    }

    if (!cm) {
      try {
        if (!wasConnected) this.client.close()
      } catch {
        // nothing to close: the library never opened a socket
      }

      return
    }

    // stop the library's reconnect loop and its timers, whatever state it is in
    if (cm.state !== CM_CLOSED) cm.setState(CM_CLOSING)
    if (cm.connectTimeoutHandler) clearTimeout(cm.connectTimeoutHandler)
    cm.socket?.destroy()
  }

  /** The children of `path`, undefined when it does not exist. */
  children(path: string, watcher?: Watcher): Promise<string[] | undefined> {
    return this.call<string[]>((done) => {
      if (watcher) this.client.getChildren(path, watcher, (e, children) => done(e, children))
      else this.client.getChildren(path, (e, children) => done(e, children))
    }).catch(absent)
  }

  /** Data and stat of `path`, undefined when it does not exist. */
  data(path: string, watcher?: Watcher): Promise<{data: Buffer | undefined; stat: Stat} | undefined> {
    return this.call<{data: Buffer | undefined; stat: Stat}>((done) => {
      const cb = (e: Error | zookeeper.Exception | null, data: Buffer | null | undefined, stat: Stat): void =>
        done(e, {data: data ?? undefined, stat})
      if (watcher) this.client.getData(path, watcher, cb)
      else this.client.getData(path, cb)
    }).catch(absent)
  }

  /** Whether `path` exists; with a watcher, notified when it is created, changed or deleted. */
  async exists(path: string, watcher?: Watcher): Promise<boolean> {
    const stat = await this.call<Stat | null | undefined>((done) => {
      if (watcher) this.client.exists(path, watcher, (e, stat) => done(e, stat))
      else this.client.exists(path, (e, stat) => done(e, stat))
    })
    return Boolean(stat)
  }

  /** Creates an ephemeral znode. */
  create(path: string, data: Buffer): Promise<'created' | 'exists' | 'no-parent'> {
    return this.call<'created'>((done) => {
      this.client.create(path, data, this.acl, zookeeper.CreateMode.EPHEMERAL, (e) => done(e, 'created'))
    }).catch((error: unknown) => {
      const code = codeOf(error)
      if (code === zookeeper.Exception.NODE_EXISTS) return 'exists'
      if (code === zookeeper.Exception.NO_NODE) return 'no-parent'
      throw error
    })
  }

  /**
   * Creates `path` and its missing parents as persistent znodes. Existing ones are skipped before a create is tried:
   * ZooKeeper checks the parent's ACL before it says a node exists, so the library's mkdirp fails under a root that
   * svc may not write even when the base path is there for it.
   */
  async mkdirp(path: string): Promise<void> {
    let prefix = ''
    for (const part of path.split('/').slice(1)) {
      prefix += `/${part}`
      if (await this.exists(prefix)) continue
      const node = prefix
      await this.call<string>((done) =>
        this.client.create(node, this.acl, zookeeper.CreateMode.PERSISTENT, (e, created) => done(e, created)),
      ).catch((error: unknown) => {
        if (codeOf(error) !== zookeeper.Exception.NODE_EXISTS) throw error
      })
    }
  }

  /** False when the znode does not exist. */
  async setData(path: string, data: Buffer): Promise<boolean> {
    const stat = await this.call<Stat>((done) => this.client.setData(path, data, (e, stat) => done(e, stat))).catch(
      absent,
    )
    return stat !== undefined
  }

  /** False when the znode does not exist or changed since `version` was read. */
  async remove(path: string, version = -1): Promise<boolean> {
    try {
      await this.call<true>((done) => this.client.remove(path, version, (e) => done(e, true)))
      return true
    } catch (error) {
      const code = codeOf(error)
      if (code === zookeeper.Exception.NO_NODE || code === zookeeper.Exception.BAD_VERSION) return false
      throw error
    }
  }

  /** Removes a service's znode once its last instance is gone, as registrator does. */
  async removeIfEmpty(path: string): Promise<void> {
    try {
      await this.call<true>((done) => this.client.remove(path, -1, (e) => done(e, true)))
    } catch (error) {
      const code = codeOf(error)
      if (code !== zookeeper.Exception.NOT_EMPTY && code !== zookeeper.Exception.NO_NODE) throw error
    }
  }

  /** Wraps one callback request; it fails at once when the session has ended, and when the session ends under it. */
  private call<T>(invoke: (done: Done<T>) => void): Promise<T> {
    if (this.closed) return Promise.reject(closedError())
    if (this.expired) return Promise.reject(expiredError(this))
    return new Promise<T>((resolve, reject) => {
      this.inflight.add(reject)
      try {
        invoke((error, value) => {
          this.inflight.delete(reject)
          if (error) reject(error)
          else resolve(value as T)
        })
      } catch (error) {
        // the library validates paths and sizes by throwing
        this.inflight.delete(reject)
        reject(new BackendError(BACKEND, errorMessage(error), {cause: error, transient: false}))
      }
    })
  }

  private abandon(error: unknown): void {
    for (const reject of this.inflight) reject(error)
    this.inflight.clear()
  }

  private onState(state: State): void {
    if (this.closed) return
    switch (state) {
      case zookeeper.State.SYNC_CONNECTED: {
        this.connected = true
        this.member = this.remote()
        this.track()
        this.lastRead = Date.now()
        this.onChange?.('connected')
        break
      }

      case zookeeper.State.DISCONNECTED: {
        if (!this.connected) return
        this.connected = false
        this.onChange?.('disconnected')
        break
      }

      case zookeeper.State.EXPIRED: {
        this.expired = true
        this.connected = false
        clearInterval(this.watchdog)
        this.abandon(expiredError(this))
        this.onChange?.('expired')
        break
      }
    }
  }

  private remote(): string {
    const socket = internals(this.client)?.socket
    const host = socket?.remoteAddress
    if (!host || !socket.remotePort) return 'unknown'
    return host.includes(':') ? `[${host}]:${socket.remotePort}` : `${host}:${socket.remotePort}`
  }

  /**
   * The library pings every third of the timeout, so a member silent for two thirds of it is gone; the library
   * would wait forever on it (and on one that accepts the connection but never completes the handshake, such as a
   * stopped process). Its socket is closed, and the library moves on to the next member.
   */
  private startWatchdog(): void {
    const tick = (): void => {
      const socket = this.track()
      if (!socket) return
      const limit = this.connected ? Math.floor((this.timeoutMs * 2) / 3) : this.handshakeMs
      if (Date.now() - this.lastRead <= limit) return
      const whom = this.connected ? `member ${this.member}` : `${socket.remoteAddress}:${socket.remotePort}`
      this.log(`${BACKEND}: ${whom} has not answered for ${limit} ms; trying another member`)
      socket.destroy()
    }

    this.watchdog = setInterval(tick, Math.max(100, Math.floor(this.handshakeMs / 4)))
    this.watchdog.unref()
  }

  /** The library's current socket, counting its reads from the moment it is first seen. */
  private track(): Socket | undefined {
    const socket = internals(this.client)?.socket
    if (!socket || socket.destroyed) return undefined
    if (socket !== this.socket) {
      this.socket = socket
      this.lastRead = Date.now()
      socket.on('data', () => {
        this.lastRead = Date.now()
      })
    }

    return socket
  }
}

function codeOf(error: unknown): number | undefined {
  return error instanceof zookeeper.Exception ? error.getCode() : undefined
}

/** NO_NODE as undefined, for reads of znodes that may be gone. */
function absent(error: unknown): undefined {
  if (codeOf(error) === zookeeper.Exception.NO_NODE) return undefined
  throw error
}

/** The one place where the library's errors become svc's. */
function toBackendError(error: unknown, what: string, auth?: Credentials): Error {
  if (error instanceof BackendError || error instanceof UserError) return error
  if (error instanceof zookeeper.Exception) {
    const code = error.getCode()
    const name = error.getName()
    if (code === zookeeper.Exception.AUTH_FAILED) return authFailed(what, error)

    if (code === zookeeper.Exception.NO_AUTH) {
      const who = auth ? `user "${auth.user}"` : 'an unauthenticated client'
      return new BackendError(BACKEND, `${what} failed: the znode's ACL denies ${who} (${name})`, {
        cause: error,
        transient: false,
        hint: auth
          ? 'check the password of --zk-auth (or zk://user:password@hosts), or use a base path this user may write'
          : 'pass the credentials that own these znodes: --zk-auth user:password (or zk://user:password@hosts)',
      })
    }

    return new BackendError(BACKEND, `${what} failed: ${name}`, {cause: error, transient: TRANSIENT_CODES.has(code)})
  }

  return new BackendError(BACKEND, `${what} failed: ${errorMessage(error)}`, {cause: error, transient: false})
}

function authFailed(what: string, cause: unknown): BackendError {
  return new BackendError(BACKEND, `${what} failed: ZooKeeper refused the credentials (AUTH_FAILED)`, {
    cause,
    transient: false,
    hint: 'check the user and password of --zk-auth (SVC_ZK_AUTH) or of zk://user:password@hosts',
  })
}

/** ZooKeeper ACL entries; `auth::` becomes the digest id of the credentials, as the server would make it. */
function toAcl(spec: ZkAclSpec, auth: Credentials | undefined): ACL[] {
  return spec.map((entry) => {
    // the permission constants are distinct bits, so their sum is their union
    const perms = [...new Set(entry.perms)].reduce((sum, letter) => sum + (PERMISSIONS[letter] ?? 0), 0)
    const id =
      entry.scheme === 'auth' && auth
        ? new zookeeper.Id('digest', digestId(auth))
        : new zookeeper.Id(entry.scheme, entry.id)
    return new zookeeper.ACL(perms, id)
  })
}

const PERMISSIONS: Record<string, number> = {
  c: zookeeper.Permission.CREATE,
  d: zookeeper.Permission.DELETE,
  r: zookeeper.Permission.READ,
  w: zookeeper.Permission.WRITE,
  a: zookeeper.Permission.ADMIN,
}

/** `user:base64(sha1(user:password))`, the id ZooKeeper's digest scheme gives an authenticated user. */
export function digestId(auth: Credentials): string {
  const hash = createHash('sha1').update(`${auth.user}:${auth.password}`).digest('base64')
  return `${auth.user}:${hash}`
}

function zkError(message: string, transient: boolean): BackendError {
  return new BackendError(BACKEND, message, {transient})
}

function closedError(): BackendError {
  return zkError('the registry is closed', false)
}

function expiredError(session: Session): BackendError {
  return zkError(`session 0x${session.idHex} expired`, true)
}

export function encodePayload(instance: ServiceInstance): Buffer {
  const privatePort = Number(instance.meta[PRIVATE_PORT_META])
  const payload: Payload = {
    Name: instance.service,
    IP: instance.address,
    PublicPort: instance.port,
    PrivatePort: Number.isInteger(privatePort) && privatePort > 0 ? privatePort : instance.port,
    ContainerID: instance.source?.containerId ?? '',
    Tags: instance.tags,
    Attrs: instance.meta,
    id: instance.id,
    service: instance.service,
    address: instance.address,
    port: instance.port,
    tags: instance.tags,
    meta: instance.meta,
    health: instance.health,
  }
  if (instance.source) payload.source = instance.source
  return Buffer.from(JSON.stringify(payload))
}

/**
 * Reads svc's payload or registrator's (Name, IP, PublicPort, Tags, Attrs, ContainerID); undefined when it is
 * neither. The znode's name `<address>:<port>` fills in what the payload lacks.
 */
export function decodePayload(service: string, node: string, data: Buffer | undefined): ServiceInstance | undefined {
  let raw: unknown
  try {
    raw = JSON.parse(data?.toString('utf8') ?? '')
  } catch {
    return undefined
  }

  if (!isRecord(raw)) return undefined
  const colon = node.lastIndexOf(':')
  const nodePort = Number(node.slice(colon + 1))
  const address = text(raw.address) ?? text(raw.IP) ?? (colon > 0 ? node.slice(0, colon) : undefined)
  const port = portOf(raw.port) ?? portOf(raw.PublicPort) ?? portOf(nodePort)
  if (!address || port === undefined) return undefined
  const instance: ServiceInstance = {
    service,
    id: text(raw.id) ?? text(raw.ID) ?? defaultInstanceId(service, address, port),
    address,
    port,
    tags: strings(raw.tags) ?? strings(raw.Tags) ?? [],
    meta: stringRecord(raw.meta) ?? stringRecord(raw.Attrs) ?? {},
    // a registrator znode exists while its container runs
    health: HEALTH_VALUES.find((h) => h === raw.health) ?? 'passing',
  }
  const source = sourceOf(raw.source) ?? containerSource(text(raw.ContainerID))
  if (source) instance.source = source
  return instance
}

function isJson(data: Buffer | undefined): boolean {
  try {
    JSON.parse(data?.toString('utf8') ?? '')
    return true
  } catch {
    return false
  }
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined
}

function portOf(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65_535 ? value : undefined
}

function strings(value: unknown): string[] | undefined {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : undefined
}

function stringRecord(value: unknown): Record<string, string> | undefined {
  if (!isRecord(value)) return undefined
  const record: Record<string, string> = {}
  for (const [k, v] of Object.entries(value)) {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') record[k] = String(v)
  }

  return record
}

function sourceOf(value: unknown): InstanceSource | undefined {
  if (!isRecord(value) || typeof value.containerId !== 'string') return undefined
  return {
    containerId: value.containerId,
    containerName: text(value.containerName) ?? '',
    image: text(value.image) ?? '',
    host: text(value.host) ?? '',
  }
}

function containerSource(containerId: string | undefined): InstanceSource | undefined {
  return containerId ? {containerId, containerName: '', image: '', host: ''} : undefined
}

/** The role in a `srvr` answer ("Mode: leader"); unknown for a member that is not serving. */
function roleOf(answer: string): MemberRole {
  const mode = /^Mode:\s*(\w+)/m.exec(answer)?.[1]
  return mode === 'leader' || mode === 'follower' || mode === 'standalone' ? mode : 'unknown'
}
