import Consul from 'consul'
import {AsyncLocalStorage} from 'node:async_hooks'
import {EventEmitter, setMaxListeners} from 'node:events'
import type {IncomingHttpHeaders} from 'node:http'
import {Agent as HttpsAgent} from 'node:https'

import {formatDuration} from '../duration.js'
import {BackendError, BackendUnavailableError, errorMessage, UserError} from '../errors.js'
import {deniedMessage, readTlsFiles, redactSecrets, requiredPermission, tlsProblem} from './consul-security.js'
import {sortInstances} from './diff.js'
import {backoffDelay, type BackendOptions, refreshPeriod, sleep, withDefaults} from './options.js'
import {type BackendSpec, describeBackend, formatHosts, type HostPort} from './spec.js'
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
import {applyChanges, toInstance, validateInstanceId, validateServiceName} from './validate.js'
import {snapshotWatch, type WatchSink} from './watch.js'
import type {LegacyRegistry} from './legacy.js'

type ConsulSpec = Extract<BackendSpec, {kind: 'consul'}>

/** How long a blocking query waits for a change; Consul adds up to 1/16 of it as jitter. */
const WAIT_MS = 30_000
const RESUME_WAIT_MS = 1000
/** After a write, how long to wait for Consul's catalog (anti-entropy sync) to show it. */
const SETTLE_MS = 3000
const DEFAULT_TTL_MS = 10_000
/** How often a registration with native checks verifies that its agent still knows it. */
const PRESENCE_PERIOD_MS = 10_000
const MIN_DEREGISTER_AFTER_MS = 60_000
const META_VALUE_MAX = 512
const META_PAIRS_MAX = 64
const META_KEY_MAX = 128
const CONSUL_META_KEY = /^[\w-]+$/
/** Meta keys svc keeps for itself; a user key that would collide is stored escaped under ESCAPED_PREFIX. */
const RESERVED_PREFIX = 'svc_'
const ESCAPED_PREFIX = 'svc_k_'
const SOURCE_KEYS: Record<keyof InstanceSource, string> = {
  containerId: 'svc_source_container_id',
  containerName: 'svc_source_container_name',
  image: 'svc_source_image',
  host: 'svc_source_host',
}
/**
 * Consul has no `unknown` health: svc stores it as a warning TTL check plus this meta key (a check's output alone
 * would not do: the agent syncs output-only changes only every few minutes).
 */
const HEALTH_KEY = 'svc_health'
const UNREACHABLE_CODES = new Set([
  'EAI_AGAIN',
  'ECONNABORTED',
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTDOWN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EPIPE',
  'ETIMEDOUT',
])
const NO_LEADER_HINT = 'wait for the servers to elect one; check that a majority of the Consul servers run'
/** Bound for the /v1/status/leader probe that tells a dead agent from one that waits (for a leader). */
const PROBE_MS = 1000

/** A failed Consul request, converted once, at the boundary. */
export class ConsulError extends BackendError {
  readonly status?: number
  /** The agent did not answer (refused, reset, timed out): the caller fails over to the next agent. */
  readonly unreachable: boolean
  /** The request ran out of time (the agent may still be alive, e.g. waiting for a leader). */
  readonly timedOut: boolean

  constructor(
    message: string,
    opts: {
      cause?: unknown
      hint?: string
      status?: number
      timedOut?: boolean
      transient: boolean
      unreachable?: boolean
    },
  ) {
    super('consul', message, opts)
    this.status = opts.status
    this.unreachable = opts.unreachable ?? false
    this.timedOut = opts.timedOut ?? false
  }
}

/** The shapes of the Consul answers svc reads (HTTP API, Consul 1.8). */
interface ConsulCheck {
  Node?: string
  CheckID: string
  Status: string
  Output?: string
  ServiceID?: string
}

interface HealthEntry {
  Node: {Node: string; Address: string}
  Service: {
    ID: string
    Service: string
    Address: string
    Port: number
    Tags: null | string[]
    Meta: null | Record<string, string>
    ModifyIndex?: number
  }
  Checks: ConsulCheck[] | null
}

interface AgentMember {
  Name: string
  Addr: string
  Port: number
  Tags?: Record<string, string>
  Status: number
}

interface AgentSelf {
  Config?: {NodeName?: string}
}

/** papi's errors (what the consul package throws), plus Node's system errors. */
interface DriverError extends Error {
  code?: string
  isAbort?: boolean
  isResponse?: boolean
  isTimeout?: boolean
  response?: {body?: unknown; statusCode?: number; req?: {method?: string; path?: string}}
}

/** What the boundary needs to know to explain an error without leaking the token. */
interface ErrorContext {
  agent: string
  token?: string
  /** The service the failed request was about, when its path names only an instance id. */
  service?: string
}

/** Per-request additions understood by the consul package: papi's cancel context and an absolute timeout. */
interface RequestExtra {
  ctx: EventEmitter
  timeout: number
  /** Declared so that the consul package's option types (token-only) accept the extras. */
  token?: string
}

type Request<T> = (client: Consul, extra: RequestExtra) => Promise<T>

interface Answer {
  headers: IncomingHttpHeaders
  body: unknown
}

interface CallOptions {
  /** Overall bound; default requestTimeoutMs. */
  deadlineMs?: number
  /** Bound for one attempt on one agent. */
  attemptMs?: number
  signal?: AbortSignal
}

const SERF_ALIVE = 1
const HEALTH_RANK: Record<Health, number> = {passing: 0, unknown: 1, warning: 2, critical: 3}

/**
 * Consul through the agent HTTP API: agent services with native or TTL checks, reads through
 * /v1/health/service (from the leader; stale mode while there is none, so reads keep working during elections), watches through
 * blocking queries. Requests go to the current agent of `spec.hosts` and fail over to the next one when it
 * does not answer.
 */
export class ConsulRegistry implements LegacyRegistry {
  readonly kind = 'consul' as const
  readonly nativeChecks = true
  readonly description: string
  readonly options: BackendOptions
  private readonly hosts: HostPort[]
  private readonly token?: string
  private readonly https: boolean
  private readonly tls: {ca?: Buffer; cert?: Buffer; key?: Buffer}
  /** The service the running operation is about (for the permission a 403 names). */
  private readonly subject = new AsyncLocalStorage<string>()
  /** Instances from other tools that svc skipped and warned about already (one warning each). */
  private readonly skippedSeen = new Set<string>()
  private aclExplained = false
  private readonly clients: Array<Consul | undefined>
  /** Node name of each agent of `hosts`, learnt from /v1/agent/self. */
  private readonly nodeNames = new Map<number, string>()
  private readonly handles = new Set<ConsulHandle>()
  /** Aborted on close: ends every watch. */
  private readonly watches = new AbortController()
  /** Aborted on close, after the registrations ended: cancels whatever is still in flight. */
  private readonly lifetime = new AbortController()
  private current = 0
  private failing = false
  /** Reads go to the leader (default consistency) unless it was missing lately; then any server answers (stale). */
  private staleUntil = 0
  /** Until some agent has answered, switches are not news: an unreachable cluster gets one error line, not a log. */
  private answered = false
  private closed = false

  constructor(spec: ConsulSpec, options: Partial<BackendOptions> = {}) {
    // every request and every watch loop listens to these
    setMaxListeners(0, this.watches.signal, this.lifetime.signal)
    this.options = withDefaults(options)
    this.hosts = spec.hosts.map((h) => ({...h}))
    this.token = spec.token
    this.https = spec.https ?? false
    this.tls = this.https ? readTlsFiles(spec.tls ?? {}) : {}
    this.clients = this.hosts.map(() => undefined)
    this.description = describeBackend(spec)
  }

  async ping(): Promise<void> {
    const leader = await this.call((c, x) => c.status.leader({...x}), {deadlineMs: this.options.connectTimeoutMs})
    if (typeof leader.value !== 'string' || leader.value === '') {
      throw new ConsulError('consul has no leader', {transient: true, hint: NO_LEADER_HINT})
    }
  }

  async register(input: InstanceInput, opts: RegisterOptions = {}): Promise<RegistrationHandle> {
    this.assertOpen()
    const instance = toInstance(input)
    const meta = encodeMeta(instance)
    const handle = new ConsulHandle(this, instance, meta, opts)
    await handle.start()
    this.handles.add(handle)
    return handle
  }

  async deregister(service: string, id: string): Promise<boolean> {
    validateServiceName(service)
    validateInstanceId(id)
    return this.about(service, () => this.deregisterNow(service, id))
  }

  private async deregisterNow(service: string, id: string): Promise<boolean> {
    // a registration of this process would put the instance back at its next heartbeat
    for (const handle of this.handles) {
      if (handle.instance.service === service && handle.instance.id === id) handle.detach()
    }

    const {agent, value} = await this.call((c, x) => c.health.service({service, ...x, ...this.reads()}))
    const matches = asEntries(value).filter((e) => e.Service.ID === id)
    if (matches.length === 0) return false
    const nodes = await this.agentsByNode()
    for (const entry of matches) {
      await this.removeFromNode(entry.Node.Node, id, nodes.get(entry.Node.Node))
    }

    await this.settle(service, agent, (entries) => !entries.some((e) => e.Service.ID === id))
    return true
  }

  async listServices(): Promise<ServiceSummary[]> {
    const {value} = await this.call((c, x) => c.catalog.services({...x, ...this.reads()}))
    const names = Object.keys(asRecord(value))
      .filter((name) => name !== 'consul')
      .sort()
    if (names.length === 0) await this.explainEmpty()
    const summaries = await mapLimit(names, 8, async (name) => {
      const instances = await this.listInstances(name)
      return {name, instances: instances.length, passing: instances.filter((i) => i.health === 'passing').length}
    })
    return summaries.filter((s) => s.instances > 0)
  }

  async listInstances(service: string): Promise<ServiceInstance[]> {
    validateServiceName(service)
    const {value} = await this.call((c, x) => c.health.service({service, ...x, ...this.reads()}))
    const instances = sortInstances(this.decode(value))
    if (instances.length === 0) await this.explainEmpty()
    return instances
  }

  watch(service?: string, opts: WatchOptions = {}): AsyncIterableIterator<WatchEvent> {
    if (service !== undefined) validateServiceName(service)
    const link = linkSignals(opts.signal, this.watches.signal)
    return snapshotWatch({signal: link.signal}, undefined, (sink) => {
      const controller = new AbortController()
      const connection = new WatchConnection(sink, (agent) => this.agentName(agent))
      const run =
        service === undefined
          ? this.watchAll(sink, connection, controller.signal)
          : this.watchService(service, connection, controller.signal, (instances) => sink.publish(instances))
      run.catch((error: unknown) => {
        if (!controller.signal.aborted) sink.fail(error)
      })
      return () => {
        controller.abort()
        link.dispose()
      }
    })
  }

  async cluster(): Promise<ClusterInfo> {
    const [members, peers, leader, nodes] = await Promise.all([
      this.call((c, x) => c.agent.members({...x})),
      this.call((c, x) => c.status.peers({...x})),
      this.call((c, x) => c.status.leader({...x})),
      this.agentsByNode(true),
    ])
    const peerSet = new Set(Array.isArray(peers.value) ? peers.value.map(String) : [])
    const leaderAddress = typeof leader.value === 'string' && leader.value !== '' ? leader.value : undefined
    const servers = (Array.isArray(members.value) ? (members.value as AgentMember[]) : []).filter(
      (m) => m.Tags?.role === 'consul',
    )
    // node name → index in `hosts`: learnt now or earlier from /v1/agent/self
    const hostOf = new Map<string, number>()
    for (const [index, name] of this.nodeNames) hostOf.set(name, index)
    // an agent that never answered: when exactly one server and one address are left over, they are the same
    const unmatchedHosts = this.hosts.map((_, i) => i).filter((i) => !this.nodeNames.has(i))
    const unmatchedServers = servers.filter((m) => !hostOf.has(m.Name))
    if (unmatchedHosts.length === 1 && unmatchedServers.length === 1) {
      hostOf.set(unmatchedServers[0]!.Name, unmatchedHosts[0]!)
    }

    const result: ClusterMember[] = []
    const seen = new Set<string>()
    for (const member of servers) {
      const rpc = formatHosts([{host: member.Addr, port: Number(member.Tags?.port ?? member.Port)}])
      seen.add(rpc)
      const role: MemberRole = rpc === leaderAddress ? 'leader' : peerSet.has(rpc) ? 'follower' : 'unknown'
      const index = hostOf.get(member.Name)
      // serf's view and, for the agents svc talks to, whether they answer svc right now
      const reachable = member.Status === SERF_ALIVE && (index === undefined || nodes.get(member.Name) === index)
      result.push({name: member.Name, address: index === undefined ? rpc : this.agentName(index), role, reachable})
    }

    for (const rpc of peerSet) {
      if (!seen.has(rpc))
        result.push({name: rpc, address: rpc, role: rpc === leaderAddress ? 'leader' : 'follower', reachable: false})
    }

    result.sort((a, b) => a.name.localeCompare(b.name))
    const leaderMember = result.find((m) => m.role === 'leader')
    return leaderMember
      ? {backend: 'consul', members: result, leader: leaderMember.address}
      : {backend: 'consul', members: result}
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.watches.abort()
    const handles = [...this.handles]
    const results = await Promise.allSettled(handles.map((h) => h.close()))
    for (const [i, result] of results.entries()) {
      if (result.status === 'rejected') {
        this.options.log(`consul: could not deregister ${handles[i]!.instance.id}: ${errorMessage(result.reason)}`)
      }
    }

    this.closed = true
    this.lifetime.abort()
    for (const client of this.clients) client?.destroy()
  }

  // --- internals shared with ConsulHandle ---

  /**
   * Under ACLs Consul hides what a request may not read instead of refusing it: an empty answer to a request
   * without a token gets one warning when the agent refuses anonymous requests (agent:read on /v1/agent/self).
   */
  private async explainEmpty(): Promise<void> {
    if (this.token !== undefined || this.aclExplained) return
    this.aclExplained = true
    try {
      await this.attempt(this.current, (c, x) => c.agent.self({...x}), this.defaultAttemptMs)
    } catch (error) {
      if (error instanceof ConsulError && error.status === 403) {
        this.options.log(
          'consul: the agent enforces ACLs and svc sent no token, so Consul may hide services from this answer: pass --token, CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE',
        )
      }
    }
  }

  /** Runs `fn` with `service` as the subject of the permission a refusal names. */
  about<T>(service: string, fn: () => Promise<T>): Promise<T> {
    return this.subject.run(service, fn)
  }

  /** Health entries → instances; entries svc cannot use (written by other tools) are skipped, each warned about once. */
  private decode(body: unknown): ServiceInstance[] {
    const {instances, skipped} = decodeHealth(body)
    const fresh = skipped.filter((s) => !this.skippedSeen.has(s.key))
    for (const s of fresh) this.skippedSeen.add(s.key)
    if (fresh.length > 0) {
      const list = fresh.map((s) => `${s.label} (${s.reason})`).join(', ')
      this.options.log(`consul: skipped ${fresh.length} instance(s) svc cannot use: ${list}`)
    }

    return instances
  }

  agentName(index: number): string {
    return formatHosts([this.host(index)])
  }

  get defaultAttemptMs(): number {
    return Math.max(1000, Math.floor(Math.min(this.options.connectTimeoutMs, this.options.requestTimeoutMs) / 2))
  }

  forget(handle: ConsulHandle): void {
    this.handles.delete(handle)
  }

  assertOpen(): void {
    if (this.closed) throw new ConsulError('the consul registry is closed', {transient: false})
  }

  /** Makes the next agent current, unless another request already did; logs the switch once per outage. */
  failOver(from: number, error: ConsulError): void {
    if (this.hosts.length < 2 || this.current !== from) return
    this.current = (from + 1) % this.hosts.length
    if (!this.failing) {
      this.failing = true
      if (this.answered)
        this.options.log(
          `consul agent ${this.agentName(from)} failed (${error.message}); switching to ${this.agentName(this.current)}`,
        )
    }
  }

  /**
   * One request to one agent, bounded; every error leaves as a ConsulError. A timeout is followed by a quick
   * /v1/status/leader probe: an agent that answers it is alive (typically blocked while the servers have no
   * leader, which holds Consul 1.8 agents' local state for up to 7 s) and is not failed over from.
   */
  async attempt<T>(
    agent: number,
    request: Request<T>,
    timeoutMs: number,
    signal?: AbortSignal,
    probe = true,
  ): Promise<T> {
    this.assertOpen()
    const ctx = new EventEmitter()
    const cancel = (): void => {
      ctx.emit('cancel')
    }

    const signals = signal ? [signal, this.lifetime.signal] : [this.lifetime.signal]
    for (const s of signals) s.addEventListener('abort', cancel, {once: true})
    try {
      if (signals.some((s) => s.aborted)) throw new Error('aborted')
      const value = await request(this.client(agent), {ctx, timeout: Math.max(1, Math.round(timeoutMs))})
      this.answered = true
      if (agent === this.current) this.failing = false
      return value
    } catch (error) {
      if (signals.some((s) => s.aborted)) {
        throw new ConsulError('the consul request was cancelled', {cause: error, transient: false})
      }

      const converted = toConsulError(error, this.errorContext(agent))
      const failure = converted.timedOut && probe ? await this.explainTimeout(agent, converted, signal) : converted
      if (/no cluster leader/.test(failure.message)) this.staleUntil = Date.now() + STALE_AFTER_NO_LEADER_MS
      throw failure
    } finally {
      for (const s of signals) s.removeEventListener('abort', cancel)
    }
  }

  /**
   * Read options. A follower's stale view trails the leader by up to a heartbeat, most of a change's latency,
   * so reads are consistent by default; while there is no leader they are stale, so lookups keep answering.
   */
  reads(index?: bigint, waitMs?: number): ReadOptions {
    if (Date.now() < this.staleUntil) return stale(index, waitMs)
    return index === undefined || index === 0n
      ? {}
      : {index: index.toString(), wait: `${Math.max(1, Math.round(waitMs ?? WAIT_MS))}ms`}
  }

  private async explainTimeout(agent: number, failure: ConsulError, signal?: AbortSignal): Promise<ConsulError> {
    let leader: unknown
    try {
      leader = await this.attempt(agent, (c, x) => c.status.leader({...x}), PROBE_MS, signal, false)
    } catch {
      return failure
    }

    const name = this.agentName(agent)
    return leader
      ? new ConsulError(`consul agent ${name} answers, but too slowly`, {cause: failure, transient: true})
      : new ConsulError(`consul has no cluster leader (agent ${name} waits for one)`, {
          cause: failure,
          hint: NO_LEADER_HINT,
          transient: true,
        })
  }

  /** Like `attempt`, keeping the response headers (X-Consul-Index). */
  async attemptWithHeaders(
    agent: number,
    request: Request<unknown>,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<Answer> {
    const result = await this.attempt(
      agent,
      (client, extra) => {
        Object.assign(extra.ctx, {includeResponse: true})
        return request(client, extra)
      },
      timeoutMs,
      signal,
    )
    if (!Array.isArray(result) || result.length === 0)
      throw new ConsulError('unexpected answer from consul', {transient: true})
    const [response, body] = result as [{headers?: IncomingHttpHeaders}, unknown]
    return {headers: response.headers ?? {}, body}
  }

  /**
   * A request with fail-over: an agent that does not answer makes the next one current; transient errors are
   * retried with backoff. When no agent answers within connectTimeoutMs: BackendUnavailableError.
   */
  async call<T>(request: Request<T>, opts: CallOptions = {}): Promise<{agent: number; value: T}> {
    const started = Date.now()
    const deadline = started + (opts.deadlineMs ?? this.options.requestTimeoutMs)
    const noAnswerDeadline = started + Math.min(this.options.connectTimeoutMs, deadline - started)
    const tried = new Set<number>()
    let answered: ConsulError | undefined
    let unreachable: ConsulError | undefined
    let rounds = 0
    let retries = 0
    for (;;) {
      const agent = this.current
      const left = Math.max(1, (answered ? deadline : noAnswerDeadline) - Date.now())
      // once an agent answered but was slow (no leader yet), let it use the time that is left
      const patient = answered?.transient === true
      try {
        const value = await this.attempt(
          agent,
          request,
          patient ? left : Math.min(opts.attemptMs ?? this.defaultAttemptMs, left),
          opts.signal,
        )
        return {agent, value}
      } catch (error) {
        const failure = error as ConsulError
        if (opts.signal?.aborted || this.lifetime.signal.aborted) throw failure
        if (failure.unreachable) {
          unreachable = failure
          tried.add(agent)
          this.failOver(agent, failure)
          // every agent failed once in this round: pause before the next
          const limit = tried.size >= this.hosts.length ? (answered ? deadline : noAnswerDeadline) - Date.now() : 0
          if (limit > 0) {
            tried.clear()
            await sleep(Math.min(backoffDelay(this.options.retry, rounds++), limit), opts.signal)
          }
        } else {
          answered = failure
          if (!failure.transient || retries >= this.options.retry.attempts) throw failure
          await sleep(
            Math.min(backoffDelay(this.options.retry, retries++), Math.max(0, deadline - Date.now())),
            opts.signal,
          )
        }

        const now = Date.now() // read once: a deadline passed between two readings showed one agent's error
        if (!answered && now >= noAnswerDeadline) {
          throw new BackendUnavailableError(
            'consul',
            formatHosts(this.hosts),
            `no answer after ${formatDuration(now - started)}`,
            unreachable,
          )
        }

        if (now >= deadline) throw answered ?? unreachable
      }
    }
  }

  /** Node name of an agent (cached); undefined when it does not answer. */
  async nodeName(agent: number, timeoutMs = this.defaultAttemptMs, fresh = false): Promise<string | undefined> {
    const known = this.nodeNames.get(agent)
    if (known !== undefined && !fresh) return known
    try {
      const self = (await this.attempt(agent, (c, x) => c.agent.self({...x}), timeoutMs)) as AgentSelf
      const name = self.Config?.NodeName
      if (typeof name !== 'string' || name === '') return undefined
      this.nodeNames.set(agent, name)
      return name
    } catch (error) {
      // fresh: undefined only for an agent that does not answer at all (a slow one is alive)
      return !fresh || (error instanceof ConsulError && !error.unreachable) ? known : undefined
    }
  }

  /**
   * Waits (blocking query on the agent that took the write) until the catalog shows what was written, so that a
   * read right after register/deregister/setHealth sees it; gives up quietly after SETTLE_MS.
   */
  async settle(service: string, agent: number, done: (entries: HealthEntry[]) => boolean): Promise<void> {
    const deadline = Date.now() + SETTLE_MS
    let index = 0n
    while (!this.closed) {
      const left = deadline - Date.now()
      if (left <= 0) return
      let answer: Answer
      try {
        answer = await this.attemptWithHeaders(
          agent,
          (c, x) => c.health.service({service, ...x, ...this.reads(index, left)}),
          left + 1000,
        )
      } catch {
        return
      }

      if (done(asEntries(answer.body))) return
      const next = consulIndex(answer.headers)
      if (next === undefined || next <= index) await sleep(50)
      index = next ?? 0n
    }
  }

  /** Removes a service instance from one node: through that node's agent when svc knows it, else from the catalog. */
  async removeFromNode(node: string | undefined, id: string, agent: number | undefined): Promise<void> {
    if (agent !== undefined) {
      try {
        await this.attempt(agent, (c, x) => c.agent.service.deregister({id, ...x}), this.defaultAttemptMs)
        return
      } catch (error) {
        // someone removed it already (another svc deregister, or the agent lost it): the goal is reached
        if (error instanceof ConsulError && forgotten(error)) return
        if (!(error instanceof ConsulError) || !error.unreachable || node === undefined) throw error
      }
    }

    if (node === undefined) throw new ConsulError(`cannot tell the consul node that holds ${id}`, {transient: false})

    await this.call((c, x) => c.catalog.deregister({node, serviceid: id, ...x}), {
      attemptMs: this.options.requestTimeoutMs,
    })
  }

  private errorContext(agent: number): ErrorContext {
    const service = this.subject.getStore()
    return {
      agent: this.agentName(agent),
      ...(this.token ? {token: this.token} : {}),
      ...(service === undefined ? {} : {service}),
    }
  }

  private host(index: number): HostPort {
    const host = this.hosts[index]
    if (!host) throw new ConsulError(`no consul agent #${index}`, {transient: false})
    return host
  }

  private client(index: number): Consul {
    let client = this.clients[index]
    if (!client) {
      const {host, port} = this.host(index)
      // the token travels as the X-Consul-Token header of every request (the consul package's `defaults`)
      client = new Consul({
        host: host.includes(':') ? `[${host}]` : host,
        port,
        ...(this.https ? {secure: true, agent: new HttpsAgent({keepAlive: true, ...this.tls})} : {}),
        ...(this.token ? {defaults: {token: this.token}} : {}),
      })
      this.clients[index] = client
    }

    return client
  }

  /**
   * Node name → index in `hosts` (asked in parallel, cached); `fresh`: only the agents that answer right now,
   * while the cache keeps the names of those that answered before.
   */
  private async agentsByNode(fresh = false): Promise<Map<string, number>> {
    const timeoutMs = Math.min(this.defaultAttemptMs, 2000)
    const names = await Promise.all(this.hosts.map((_, i) => this.nodeName(i, timeoutMs, fresh)))
    const result = new Map<string, number>()
    for (const [i, name] of names.entries()) {
      if (name !== undefined) result.set(name, i)
    }

    return result
  }

  /**
   * One blocking-query loop: each answer goes to `onValue`; errors back off and fail over, then resume from the
   * last index (the first query after an error waits only briefly, so that the recovery shows at once).
   */
  private async blockingLoop(
    signal: AbortSignal,
    connection: WatchConnection,
    request: (client: Consul, extra: RequestExtra, read: ReadOptions) => Promise<unknown>,
    onValue: (body: unknown) => void,
  ): Promise<void> {
    let index = 0n
    let failures = 0
    while (!signal.aborted) {
      const agent = this.current
      const started = Date.now()
      const waitMs = failures > 0 ? RESUME_WAIT_MS : WAIT_MS
      try {
        const answer = await this.attemptWithHeaders(
          agent,
          (c, x) => request(c, x, this.reads(index, waitMs)),
          waitMs + waitMs / 16 + this.defaultAttemptMs,
          signal,
        )
        failures = 0
        connection.connected(agent)
        onValue(answer.body)
        const next = consulIndex(answer.headers)
        // no index, or an early answer without change: never spin
        if ((next === undefined || next === index) && Date.now() - started < 1000) await sleep(1000, signal)

        // an index that goes backwards (a server restored a snapshot) restarts with a non-blocking read
        index = next === undefined || next < index ? 0n : next
      } catch (error) {
        if (signal.aborted) return
        const failure = error instanceof ConsulError ? error : toConsulError(error, this.errorContext(agent))
        if (!failure.transient) throw failure
        connection.reconnecting(failure)
        if (failure.unreachable || failures > 0) this.failOver(agent, failure)
        await sleep(backoffDelay(this.options.retry, failures++), signal)
      }
    }
  }

  private watchService(
    service: string,
    connection: WatchConnection,
    signal: AbortSignal,
    onInstances: (instances: ServiceInstance[]) => void,
  ): Promise<void> {
    return this.blockingLoop(
      signal,
      connection,
      (c, x, read) => c.health.service({service, ...x, ...read}),
      (body) => onInstances(this.decode(body)),
    )
  }

  /** The catalog's service list in one blocking loop, and one blocking loop per service. */
  private async watchAll(sink: WatchSink, connection: WatchConnection, signal: AbortSignal): Promise<void> {
    const children = new Map<string, {link: ReturnType<typeof linkSignals>; instances?: ServiceInstance[]}>()
    let ready = false
    const publish = (): void => {
      // the first snapshot waits for every service's first answer, so that it is complete
      if (!ready && [...children.values()].some((c) => c.instances === undefined)) return
      ready = true
      sink.publish([...children.values()].flatMap((c) => c.instances ?? []))
    }

    const start = (name: string): void => {
      const link = linkSignals(signal)
      const child: {link: typeof link; instances?: ServiceInstance[]} = {link}
      children.set(name, child)
      this.watchService(name, connection, link.signal, (instances) => {
        if (children.get(name) !== child) return
        child.instances = instances
        publish()
      }).catch((error: unknown) => {
        if (!link.signal.aborted) sink.fail(error)
      })
    }

    const stop = (child: {link: ReturnType<typeof linkSignals>}): void => {
      child.link.abort()
      child.link.dispose()
    }

    try {
      await this.blockingLoop(
        signal,
        connection,
        (c, x, read) => c.catalog.services({...x, ...read}),
        (body) => {
          const names = new Set(Object.keys(asRecord(body)).filter((n) => n !== 'consul'))
          for (const [name, child] of children) {
            if (!names.has(name)) {
              stop(child)
              children.delete(name)
            }
          }

          for (const name of names) if (!children.has(name)) start(name)
          publish()
        },
      )
    } finally {
      for (const child of children.values()) stop(child)
    }
  }
}

/** Reports a watch's connection state once per change, for all of its loops together. */
class WatchConnection {
  private state: 'connected' | 'initial' | 'reconnecting' = 'initial'
  private agent = -1

  constructor(
    private readonly sink: WatchSink,
    private readonly name: (agent: number) => string,
  ) {}

  connected(agent: number): void {
    if (this.state === 'connected' && this.agent === agent) return
    this.state = 'connected'
    this.agent = agent
    this.sink.status('connected', `agent ${this.name(agent)}`)
  }

  reconnecting(error: ConsulError): void {
    if (this.state === 'reconnecting') return
    this.state = 'reconnecting'
    this.sink.status('reconnecting', error.message)
  }
}

/**
 * One agent-service registration. Without a native check it carries a TTL check that this process passes every
 * TTL/3; with native HTTP/TCP checks Consul owns the health, and this process only verifies, now and then, that
 * the agent still knows the service. Either way, an agent that forgot the service (restarted) or stopped
 * answering gets it registered again: the same agent, or the next one.
 */
class ConsulHandle implements RegistrationHandle {
  instance: ServiceInstance
  private readonly registry: ConsulRegistry
  private meta: Record<string, string>
  private readonly opts: RegisterOptions
  private readonly native: boolean
  private readonly ttlMs: number
  private readonly period: number
  private readonly stopping = new AbortController()
  /** Agents that held the registration before a fail-over; it is removed there once they answer again. */
  private readonly formerOwners = new Set<number>()
  private owner = 0
  private output?: string
  private maintenance = false
  private timer?: NodeJS.Timeout
  private busy: Promise<void> = Promise.resolve()
  private stopped = false
  private lastReport?: RegistrationState
  private delayed = false

  constructor(
    registry: ConsulRegistry,
    instance: ServiceInstance,
    meta: Record<string, string>,
    opts: RegisterOptions,
  ) {
    this.registry = registry
    this.instance = instance
    this.meta = meta
    this.opts = opts
    this.native = Boolean(opts.check?.http || opts.check?.tcp)
    this.ttlMs = Math.max(1000, opts.ttlMs ?? DEFAULT_TTL_MS)
    this.period = this.native ? PRESENCE_PERIOD_MS : refreshPeriod(this.ttlMs, opts.refreshMs, 300)
  }

  start(): Promise<void> {
    return this.registry.about(this.instance.service, () => this.startNow())
  }

  private async startNow(): Promise<void> {
    const {agent} = await this.registry.call((c, x) => c.agent.service.register({...this.definition(), ...x}))
    this.owner = agent
    // the TTL check starts passing already; this first heartbeat sets its output (a failure is the ticks' to handle)
    if (!this.native) await this.updateTtl(agent).catch(() => {})
    await this.settleVisible()
    this.schedule()
  }

  /**
   * TTL registrations: passing/warning/critical on the TTL check (`unknown` is stored as warning plus a meta
   * marker, and read back as unknown). Native-check registrations: `critical` puts the service into maintenance
   * mode, any other value takes it out; the native checks keep deciding otherwise.
   */
  setHealth(health: Health, output?: string): Promise<void> {
    return this.registry.about(this.instance.service, () => this.setHealthNow(health, output))
  }

  private async setHealthNow(health: Health, output?: string): Promise<void> {
    if (this.stopped) throw new ConsulError(`the registration of ${this.instance.id} is closed`, {transient: false})
    const previous = this.instance.health
    this.instance.health = health
    this.output = output
    const agent = this.owner
    if (this.native) {
      const enable = health === 'critical'
      if (enable === this.maintenance) return
      await this.setMaintenance(agent, enable)
      this.maintenance = enable
    } else {
      if ((previous === 'unknown') !== (health === 'unknown')) {
        // the marker lives in the service's meta: register again (same agent, same id) to change it
        await this.registry.attempt(
          agent,
          (c, x) => c.agent.service.register({...this.definition(), ...x}),
          this.registry.defaultAttemptMs,
        )
      }

      await this.updateTtl(agent)
    }

    await this.settleVisible()
  }

  /** Registers the same id again with the new tags/meta: Consul updates the service in place. */
  update(changes: InstanceChanges): Promise<void> {
    return this.registry.about(this.instance.service, () => this.updateNow(changes))
  }

  private async updateNow(changes: InstanceChanges): Promise<void> {
    if (this.stopped) throw new ConsulError(`the registration of ${this.instance.id} is closed`, {transient: false})
    const next = applyChanges(this.instance, changes)
    const meta = encodeMeta(next)
    this.instance = next
    this.meta = meta
    await this.registry.attempt(
      this.owner,
      (c, x) => c.agent.service.register({...this.definition(), ...x}),
      this.registry.defaultAttemptMs,
    )
    await this.settleVisible()
  }

  close(opts: {deregister?: boolean} = {}): Promise<void> {
    return this.registry.about(this.instance.service, () => this.closeNow(opts))
  }

  private async closeNow(opts: {deregister?: boolean}): Promise<void> {
    if (this.stopped) return
    this.detach()
    await this.busy
    if (opts.deregister === false) return
    const {id, service} = this.instance
    const owner = this.owner
    const formers = [...this.formerOwners]
    const nodes = await Promise.all([owner, ...formers].map((agent) => this.registry.nodeName(agent)))
    const ownerNode = nodes[0]
    await this.registry.removeFromNode(ownerNode, id, owner)
    // copies left on agents svc moved away from; through the catalog when such an agent is still down
    await Promise.allSettled(
      formers.map((agent, i) =>
        nodes[i + 1] === ownerNode ? undefined : this.registry.removeFromNode(nodes[i + 1], id, agent),
      ),
    )
    const removed = new Set(nodes)
    await this.registry.settle(
      service,
      owner,
      (entries) => !entries.some((e) => e.Service.ID === id && (removed.has(undefined) || removed.has(e.Node.Node))),
    )
  }

  /** Stops keeping the registration alive, without deregistering it. */
  detach(): void {
    if (this.stopped) return
    this.stopped = true
    clearTimeout(this.timer)
    this.stopping.abort()
    this.registry.forget(this)
  }

  private definition() {
    const {address, id, port, service, tags} = this.instance
    const check = this.opts.check
    const deregisterAfter = check?.deregisterAfterMs
    const meta =
      !this.native && this.instance.health === 'unknown' ? {...this.meta, [HEALTH_KEY]: 'unknown'} : this.meta
    const base = {name: service, id, address, port, tags, meta}
    if (this.native && check) {
      const common = {
        interval: `${Math.max(1, Math.round(check.intervalMs))}ms`,
        timeout: `${Math.max(1, Math.round(check.timeoutMs))}ms`,
        ...(deregisterAfter === undefined
          ? {}
          : {deregistercriticalserviceafter: `${Math.max(MIN_DEREGISTER_AFTER_MS, deregisterAfter)}ms`}),
      }
      const checks = []
      if (check.http)
        checks.push({name: `svc http ${check.http}`, checkid: `service:${id}:http`, http: check.http, ...common})
      if (check.tcp)
        checks.push({name: `svc tcp ${check.tcp}`, checkid: `service:${id}:tcp`, tcp: check.tcp, ...common})
      return {...base, checks}
    }

    return {
      ...base,
      check: {
        name: 'svc heartbeat',
        checkid: ttlCheckId(id),
        notes: 'passed by the svc process that registered the service',
        ttl: `${this.ttlMs}ms`,
        timeout: `${this.ttlMs}ms`,
        status: consulStatus(this.instance.health),
        // the copy left behind on an agent svc moved away from (or that the owner abandoned) does not linger
        deregistercriticalserviceafter: `${Math.max(MIN_DEREGISTER_AFTER_MS, deregisterAfter ?? 0)}ms`,
      },
    }
  }

  private schedule(): void {
    if (this.stopped) return
    this.timer = setTimeout(() => {
      this.busy = this.tick().finally(() => this.schedule())
    }, this.period)
  }

  private async tick(): Promise<void> {
    const agent = this.owner
    try {
      await (this.native ? this.verifyPresence(agent) : this.updateTtl(agent))
      if (this.lastReport === 'lost' || this.lastReport === 'error') {
        this.report('restored', `agent ${this.registry.agentName(agent)} answers again`)
      }
    } catch (error) {
      if (this.stopped || !(error instanceof ConsulError)) return
      if (forgotten(error)) {
        await this.reregister(`agent ${this.registry.agentName(agent)} no longer knows the service (restarted?)`, false)
      } else if (error.unreachable) {
        this.registry.failOver(agent, error)
        await this.reregister(`agent ${this.registry.agentName(agent)} does not answer (${error.message})`, true)
      } else if (error.transient) {
        // alive but slow or leaderless: the registration stays where it is; the next heartbeat tries again
        if (!this.delayed)
          this.registry.options.log(`consul: heartbeat of ${this.instance.id} delayed: ${error.message}`)
        this.delayed = true
        return
      } else {
        this.report('error', error.message)
      }
    }

    this.delayed = false

    for (const former of this.formerOwners) {
      if (this.stopped) return
      // two addresses of one agent: the registration there is the current one
      const [formerNode, ownerNode] = await Promise.all([
        this.registry.nodeName(former),
        this.registry.nodeName(this.owner),
      ])
      if (formerNode !== undefined && formerNode === ownerNode) {
        this.formerOwners.delete(former)
        continue
      }

      await this.removeFrom(former).catch(() => {})
    }
  }

  private async reregister(reason: string, move: boolean): Promise<void> {
    this.report('lost', reason)
    const registry = this.registry
    const signal = this.stopping.signal
    try {
      let agent = this.owner
      if (move) {
        const result = await registry.call((c, x) => c.agent.service.register({...this.definition(), ...x}), {signal})
        agent = result.agent
      } else {
        await registry.attempt(
          agent,
          (c, x) => c.agent.service.register({...this.definition(), ...x}),
          registry.defaultAttemptMs,
          signal,
        )
      }

      if (agent !== this.owner) {
        this.formerOwners.add(this.owner)
        this.formerOwners.delete(agent)
        this.owner = agent
      }

      if (!this.native) await this.updateTtl(agent)
      else if (this.maintenance) await this.setMaintenance(agent, true)

      this.report('restored', `registered again on agent ${registry.agentName(agent)}`)
    } catch (error) {
      if (!this.stopped) this.report('error', `could not register again: ${errorMessage(error)}; retrying`)
    }
  }

  private async updateTtl(agent: number): Promise<void> {
    const health = this.instance.health
    const id = ttlCheckId(this.instance.id)
    const note = this.output ?? `svc: ${health}`
    const timeout = Math.min(this.period, this.registry.defaultAttemptMs)
    const signal = this.stopping.signal
    await this.registry.attempt(
      agent,
      (c, x) => {
        const opts = {id, note, ...x}
        return health === 'passing'
          ? c.agent.check.pass(opts)
          : health === 'critical'
            ? c.agent.check.fail(opts)
            : c.agent.check.warn(opts)
      },
      timeout,
      signal,
    )
  }

  private async verifyPresence(agent: number): Promise<void> {
    const filter = `ID == "${this.instance.id}"`
    const services = await this.registry.attempt(
      agent,
      (c, x) => c.agent.service.list({filter, ...x}),
      Math.min(this.period, this.registry.defaultAttemptMs),
      this.stopping.signal,
    )
    if (!(this.instance.id in asRecord(services))) {
      throw new ConsulError(`agent ${this.registry.agentName(agent)} does not know ${this.instance.id}`, {
        status: 404,
        transient: false,
      })
    }
  }

  private async setMaintenance(agent: number, enable: boolean): Promise<void> {
    const reason = enable ? (this.output ?? 'set critical by svc') : undefined
    await this.registry.attempt(
      agent,
      (c, x) => c.agent.service.maintenance({id: this.instance.id, enable, ...(reason ? {reason} : {}), ...x}),
      this.registry.defaultAttemptMs,
    )
  }

  private async removeFrom(agent: number): Promise<void> {
    await this.registry.attempt(
      agent,
      (c, x) => c.agent.service.deregister({id: this.instance.id, ...x}),
      Math.min(2000, this.registry.defaultAttemptMs),
    )
    this.formerOwners.delete(agent)
  }

  /** Waits until the catalog shows the instance with the health svc set on its owner. */
  private async settleVisible(): Promise<void> {
    const {id, service} = this.instance
    const node = await this.registry.nodeName(this.owner)
    const want = this.native ? undefined : consulStatus(this.instance.health)
    await this.registry.settle(service, this.owner, (entries) =>
      entries.some(
        (e) =>
          e.Service.ID === id &&
          (node === undefined || e.Node.Node === node) &&
          (want === undefined
            ? (e.Checks ?? []).some((c) => c.CheckID === maintenanceCheckId(id)) === this.maintenance
            : (e.Service.Meta?.[HEALTH_KEY] === 'unknown') === (this.instance.health === 'unknown') &&
              (e.Checks ?? []).some((c) => c.CheckID === ttlCheckId(id) && c.Status === want)),
      ),
    )
  }

  private report(state: RegistrationState, detail: string): void {
    if (state === this.lastReport && state !== 'restored') return
    this.lastReport = state
    this.opts.onStateChange?.(state, detail)
    this.registry.options.log(`consul: registration ${this.instance.id} ${state}: ${detail}`)
  }
}

/** A signal that aborts with any of `parents` or by `abort()`; `dispose` detaches it from the parents. */
function linkSignals(...parents: Array<AbortSignal | undefined>): {
  signal: AbortSignal
  abort: () => void
  dispose: () => void
} {
  const controller = new AbortController()
  const present = parents.filter((p): p is AbortSignal => p !== undefined)
  const abort = (): void => {
    controller.abort()
    dispose()
  }

  function dispose(): void {
    for (const parent of present) parent.removeEventListener('abort', abort)
  }

  for (const parent of present) {
    if (parent.aborted) controller.abort()
    else parent.addEventListener('abort', abort, {once: true})
  }

  return {signal: controller.signal, abort, dispose}
}

function ttlCheckId(id: string): string {
  return `service:${id}`
}

/** The critical check Consul adds while a service is in maintenance mode. */
function maintenanceCheckId(id: string): string {
  return `_service_maintenance:${id}`
}

function consulStatus(health: Health): 'critical' | 'passing' | 'warning' {
  return health === 'passing' ? 'passing' : health === 'critical' ? 'critical' : 'warning'
}

/** The agent does not know the check or service: it restarted without its state, or someone deregistered it. */
function forgotten(error: ConsulError): boolean {
  return (
    error.status === 404 ||
    (error.status === 500 &&
      /does not have associated TTL|unknown check|unknown service|not found/i.test(error.message))
  )
}

type ReadOptions = {index?: string; stale?: boolean; wait?: string}

const STALE_AFTER_NO_LEADER_MS = 30_000

/** Read options: stale mode (any server answers, also while there is no leader), blocking when an index is given. */
function stale(index?: bigint, waitMs?: number): {index?: string; stale: boolean; wait?: string} {
  return index === undefined
    ? {stale: true}
    : {stale: true, index: index.toString(), wait: `${Math.max(1, Math.round(waitMs ?? WAIT_MS))}ms`}
}

function consulIndex(headers: IncomingHttpHeaders): bigint | undefined {
  const raw = headers['x-consul-index']
  const text = Array.isArray(raw) ? raw[0] : raw
  if (text === undefined || !/^\d+$/.test(text)) return undefined
  return BigInt(text)
}

/** Entries with what deregistration and settling read (ids, node names, checks), whatever else they lack. */
function asEntries(value: unknown): HealthEntry[] {
  if (!Array.isArray(value)) return []
  return value.flatMap((raw: unknown) => {
    const entry = readEntry(raw)
    return 'entry' in entry ? [entry.entry] : 'partial' in entry && entry.partial ? [entry.partial] : []
  })
}

type Json = Record<string, unknown>
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)
const nonEmpty = (v: unknown): v is string => typeof v === 'string' && v.trim() !== ''
/** Addresses nobody can connect to. */
const usableAddress = (v: unknown): v is string => nonEmpty(v) && !['0.0.0.0', '::', '[::]'].includes(v.trim())

/** An instance svc skipped: `key` tells it from others (one warning each), `label` and `reason` go to the user. */
export interface SkippedEntry {
  key: string
  label: string
  reason: string
}

/**
 * One /v1/health/service entry, checked field by field (other tools write services too): a usable entry, or why
 * not (with what can still be read of it, for deregistration).
 */
function readEntry(raw: unknown): {entry: HealthEntry} | {reason: string; label: string; partial?: HealthEntry} {
  if (!isObject(raw) || !isObject(raw.Service) || !isObject(raw.Node)) {
    return {reason: 'not a service entry', label: 'an entry'}
  }

  const {Service: service, Node: node} = raw
  if (!nonEmpty(service.ID) || !nonEmpty(service.Service)) {
    return {reason: 'no service name or id', label: nonEmpty(service.ID) ? service.ID : 'an entry'}
  }

  const label = `${service.Service}/${service.ID}`
  const checks = raw.Checks ?? null
  const validChecks =
    checks === null ||
    (Array.isArray(checks) &&
      checks.every((c: unknown) => isObject(c) && typeof c.Status === 'string' && typeof c.CheckID === 'string'))
  const tags = service.Tags ?? null
  const validTags = tags === null || (Array.isArray(tags) && tags.every((t: unknown) => typeof t === 'string'))
  const meta = service.Meta ?? null
  const validMeta = meta === null || (isObject(meta) && Object.values(meta).every((v) => typeof v === 'string'))
  const entry: HealthEntry = {
    Node: {
      Node: typeof node.Node === 'string' ? node.Node : '',
      Address: typeof node.Address === 'string' ? node.Address : '',
    },
    Service: {
      ID: service.ID,
      Service: service.Service,
      Address: typeof service.Address === 'string' ? service.Address : '',
      Port: typeof service.Port === 'number' ? service.Port : 0,
      Tags: validTags ? (tags as null | string[]) : null,
      Meta: validMeta ? (meta as null | Record<string, string>) : null,
      ...(typeof service.ModifyIndex === 'number' ? {ModifyIndex: service.ModifyIndex} : {}),
    },
    Checks: validChecks ? (checks as ConsulCheck[] | null) : null,
  }
  const port = service.Port
  let reason: string | undefined
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65_535) reason = `port ${String(port)}`
  else if (!usableAddress(service.Address) && !usableAddress(node.Address)) reason = 'no address'
  else if (!validMeta) reason = "meta that is not svc's"
  else if (!validTags) reason = 'tags that are not strings'
  else if (!validChecks) reason = 'checks svc cannot read'
  if (reason !== undefined) return {reason, label, partial: entry}
  // Consul's rule: an empty service address means the node's
  if (!usableAddress(service.Address)) entry.Service.Address = node.Address as string
  return {entry}
}

/** A /v1/health/service answer → svc's instances, and the entries skipped (never throws). */
export function decodeHealth(body: unknown): {instances: ServiceInstance[]; skipped: SkippedEntry[]} {
  if (!Array.isArray(body)) return {instances: [], skipped: []}
  const entries: HealthEntry[] = []
  const skipped: SkippedEntry[] = []
  for (const raw of body as unknown[]) {
    const read = readEntry(raw)
    if ('entry' in read) entries.push(read.entry)
    else skipped.push({key: `${read.label}\u0000${read.reason}`, label: read.label, reason: read.reason})
  }

  return {instances: toInstances(entries), skipped}
}

function asRecord(value: unknown): Record<string, unknown> {
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {}
}

/** Health entries → instances; an id registered on several nodes (left behind by a fail-over) counts once: the healthiest, then the newest. */
function toInstances(entries: HealthEntry[]): ServiceInstance[] {
  const best = new Map<string, {instance: ServiceInstance; modified: number}>()
  for (const entry of entries) {
    const instance = toServiceInstance(entry)
    const modified = entry.Service.ModifyIndex ?? 0
    const key = `${instance.service}\u0000${instance.id}`
    const other = best.get(key)
    if (
      !other ||
      HEALTH_RANK[instance.health] < HEALTH_RANK[other.instance.health] ||
      (instance.health === other.instance.health && modified > other.modified)
    ) {
      best.set(key, {instance, modified})
    }
  }

  return [...best.values()].map((b) => b.instance)
}

function toServiceInstance(entry: HealthEntry): ServiceInstance {
  const {Node: node, Service: service} = entry
  const {meta, source} = decodeMeta(service.Meta ?? {})
  const instance: ServiceInstance = {
    service: service.Service,
    id: service.ID,
    address: service.Address || node.Address,
    port: service.Port,
    tags: [...(service.Tags ?? [])],
    meta,
    health: aggregateHealth(entry.Checks ?? [], service.ID, service.Meta?.[HEALTH_KEY] === 'unknown'),
  }
  if (source) instance.source = source
  return instance
}

/** Worst of the node's and the service's checks (maintenance shows as a critical check); no checks: passing. */
function aggregateHealth(checks: ConsulCheck[], serviceId: string, unknown: boolean): Health {
  let worst: Health = 'passing'
  for (const check of checks) {
    let health: Health
    switch (check.Status) {
      case 'passing': {
        health = 'passing'
        break
      }

      case 'critical': {
        health = 'critical'
        break
      }

      default: {
        health = unknown && check.CheckID === ttlCheckId(serviceId) ? 'unknown' : 'warning'
      }
    }

    if (HEALTH_RANK[health] > HEALTH_RANK[worst]) worst = health
  }

  return worst
}

/** Consul meta keys allow [A-Za-z0-9_-]: '.' is escaped reversibly, and keys that collide with svc's or Consul's reserved prefixes too. */
function encodeMeta(instance: ServiceInstance): Record<string, string> {
  const meta: Record<string, string> = {}
  for (const [key, value] of Object.entries(instance.meta)) {
    if (value.length > META_VALUE_MAX) {
      throw new UserError(
        `meta value of "${key}" is ${value.length} characters long`,
        `Consul allows at most ${META_VALUE_MAX} characters in a meta value`,
      )
    }

    const stored = storedMetaKey(key)
    if (stored.length > META_KEY_MAX) {
      throw new UserError(
        `meta key "${key}" is too long for Consul (${stored.length} characters once escaped)`,
        `use at most ${META_KEY_MAX} characters; a key with '.' or starting with svc_ or consul- takes more room`,
      )
    }

    meta[stored] = value
  }

  const source = instance.source
  if (source) {
    for (const field of Object.keys(SOURCE_KEYS) as Array<keyof InstanceSource>) {
      const value = source[field]
      if (value.length > META_VALUE_MAX) {
        throw new UserError(
          `source ${field} is ${value.length} characters long`,
          `Consul allows at most ${META_VALUE_MAX}`,
        )
      }

      meta[SOURCE_KEYS[field]] = value
    }
  }

  // one pair stays free for HEALTH_KEY
  if (Object.keys(meta).length >= META_PAIRS_MAX) {
    throw new UserError(
      `too many meta keys for Consul (${Object.keys(instance.meta).length})`,
      `use at most ${META_PAIRS_MAX - 1 - (source ? 4 : 0)}: Consul allows ${META_PAIRS_MAX} meta pairs per service, svc needs ${source ? 5 : 1}`,
    )
  }

  return meta
}

function storedMetaKey(key: string): string {
  const plain = CONSUL_META_KEY.test(key) && !key.startsWith(RESERVED_PREFIX) && !key.startsWith('consul-')
  return plain ? key : ESCAPED_PREFIX + key.replaceAll('_', '__').replaceAll('.', '_d')
}

function decodeMeta(stored: Record<string, string>): {meta: Record<string, string>; source?: InstanceSource} {
  const meta: Record<string, string> = {}
  const reserved: Record<string, string> = {}
  for (const [key, value] of Object.entries(stored)) {
    if (key.startsWith(ESCAPED_PREFIX)) {
      const original = unescapeMetaKey(key.slice(ESCAPED_PREFIX.length))
      if (original === undefined) reserved[key] = value
      else meta[original] = value
    } else if (key.startsWith(RESERVED_PREFIX)) {
      reserved[key] = value
    } else {
      meta[key] = value
    }
  }

  const containerId = reserved[SOURCE_KEYS.containerId]
  if (containerId === undefined) return {meta}
  return {
    meta,
    source: {
      containerId,
      containerName: reserved[SOURCE_KEYS.containerName] ?? '',
      image: reserved[SOURCE_KEYS.image] ?? '',
      host: reserved[SOURCE_KEYS.host] ?? '',
    },
  }
}

function unescapeMetaKey(escaped: string): string | undefined {
  let out = ''
  for (let i = 0; i < escaped.length; i++) {
    const ch = escaped[i]
    if (ch !== '_') {
      out += ch
      continue
    }

    const next = escaped[++i]
    if (next === '_') out += '_'
    else if (next === 'd') out += '.'
    else return undefined
  }

  return out
}

/** The one place where driver errors become svc's errors; nothing of the token leaves through them. */
export function toConsulError(error: unknown, context: ErrorContext | string): ConsulError {
  const ctx = typeof context === 'string' ? {agent: context} : context
  const agent = ctx.agent
  const clean = (text: string): string => redactSecrets(text, [ctx.token])
  if (error instanceof ConsulError) return error
  if (error instanceof BackendError) {
    return new ConsulError(clean(error.message), {cause: error, hint: error.hint, transient: error.transient})
  }

  const e = (error instanceof Error ? error : new Error(String(error))) as DriverError
  if (e.isResponse) {
    const status = e.response?.statusCode ?? 0
    const text = clean(responseText(e))
    if (status === 403) {
      const req = e.response?.req
      const permission = requiredPermission(req?.method ?? 'GET', req?.path ?? '', ctx.service)
      const {message, hint} = deniedMessage(text, permission, ctx.token !== undefined)
      return new ConsulError(`${message} (agent ${agent})`, {cause: e, hint, status, transient: false})
    }

    if (status === 400 && /HTTP request to an HTTPS server/i.test(text)) {
      return new ConsulError(`consul agent ${agent} speaks HTTPS on that port`, {
        cause: e,
        hint: 'use consul+https:// (or CONSUL_HTTP_SSL=true) with --cacert or CONSUL_CACERT',
        status,
        transient: false,
      })
    }

    if (status === 400) {
      return new ConsulError(`consul rejected the request: ${text}`, {
        cause: e,
        hint: 'correct the value Consul names',
        status,
        transient: false,
      })
    }

    if (status >= 500 && /no cluster leader|no leader/i.test(text)) {
      return new ConsulError(`consul has no cluster leader (agent ${agent})`, {
        cause: e,
        hint: 'wait for the servers to elect one; check that a majority of the Consul servers run',
        status,
        transient: true,
      })
    }

    return new ConsulError(`consul agent ${agent} answered ${status}: ${text}`, {
      cause: e,
      status,
      transient: status >= 500 || status === 429,
    })
  }

  if (e.isTimeout) {
    return new ConsulError(`consul agent ${agent} did not answer in time`, {
      cause: e,
      timedOut: true,
      transient: true,
      unreachable: true,
    })
  }

  const code =
    e.code ?? (e.cause && typeof e.cause === 'object' && 'code' in e.cause ? String(e.cause.code) : undefined)
  const tls = tlsProblem(code, e.message)
  if (tls) {
    return new ConsulError(`TLS with consul agent ${agent} failed: ${tls.detail}`, {
      cause: e,
      hint: tls.hint,
      transient: false,
    })
  }

  if ((code && UNREACHABLE_CODES.has(code)) || /socket hang up/i.test(e.message)) {
    return new ConsulError(`consul agent ${agent} is unreachable (${code ?? 'connection closed'})`, {
      cause: e,
      transient: true,
      unreachable: true,
    })
  }

  return new ConsulError(`consul request to ${agent} failed: ${clean(stripDriverPrefix(e.message))}`, {
    cause: e,
    transient: false,
  })
}

function responseText(error: DriverError): string {
  const body = error.response?.body
  const text =
    typeof body === 'string' ? body : Buffer.isBuffer(body) ? body.toString('utf8') : stripDriverPrefix(error.message)
  return text.trim().replaceAll(/\s+/g, ' ').slice(0, 500) || `status ${error.response?.statusCode ?? '?'}`
}

/** papi prefixes messages with "consul: <request name>: ". */
function stripDriverPrefix(message: string): string {
  return message.replace(/^consul: [\w.]+: /, '')
}

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = Array.from({length: items.length})
  let next = 0
  const workers = Array.from({length: Math.min(limit, items.length)}, async () => {
    while (next < items.length) {
      const i = next++
      results[i] = await fn(items[i]!)
    }
  })
  await Promise.all(workers)
  return results
}
