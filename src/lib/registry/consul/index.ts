import {BugError} from '../../errors.js'
import type {Binding, Driver, DriverEvent, DriverWatchSink, OwnedRecord, ReadResult, RecordKey} from '../core/driver.js'
import {isSkipped} from '../core/driver.js'
import {foreignRecords} from '../core/foreign.js'
import {type BackendOptions, withDefaults} from '../options.js'
import {describeBackend} from '../spec.js'
import type {ClusterInfo, Health, ServiceSummary} from '../types.js'
import {Agents, type ConsulSpec} from './agents.js'
import {type BindingContext, ConsulBinding} from './binding.js'
import {Catalog} from './catalog.js'
import {describeCluster} from './cluster.js'
import {ConsulError} from './errors.js'
import {OwnerCheck} from './owner-check.js'
import {AgentListings} from './presence.js'
import {catalogNames, toRecords} from './records.js'
import {BlockingWatch} from './watch.js'

/** readMany shares an agent listing this recent with the bindings' refreshes. */
const PRESENCE_MAX_AGE_MS = 1000

const bindingKey = (key: RecordKey): string => `${key.service}\u0000${key.id}`

/** Consul through the agent HTTP API: a driver for the one registration lifecycle of core/. */
export function createDriver(spec: ConsulSpec, options: Partial<BackendOptions> = {}): Driver {
  return new ConsulDriver(spec, withDefaults(options))
}

/**
 * Agent services with a TTL check per instance (or native HTTP/TCP checks), reads through /v1/health/service,
 * watches through blocking queries; requests go to the agent that answered last and fail over to the next.
 */
class ConsulDriver implements Driver {
  readonly kind = 'consul' as const
  readonly nativeChecks = true
  readonly description: string
  readonly limits = {defaultTtlMs: 10_000, minTtlMs: 1000, refreshApplies: true}
  private readonly agents: Agents
  private readonly catalog: Catalog
  /** The current binding of each id this process holds, so that a new write knows the agents it leaves. */
  private readonly bindings = new Map<string, ConsulBinding>()
  /** This process's owner check on each agent it registered on: the liveness every instance there aliases. */
  private readonly owners = new Map<number, OwnerCheck>()
  private readonly context: BindingContext
  private readonly eventListeners = new Set<(event: DriverEvent) => void>()
  private unsubscribeSwitch?: () => void
  private aclExplained = false

  constructor(spec: ConsulSpec, options: BackendOptions) {
    this.description = describeBackend(spec)
    this.agents = new Agents(spec, options)
    this.catalog = new Catalog(this.agents)
    this.context = {
      agents: this.agents,
      catalog: this.catalog,
      settled: new Set(),
      listings: new AgentListings(this.agents, this.catalog),
      current: (binding) => this.bindings.get(bindingKey(binding.key)) === binding,
      owner: (agent, record) => {
        let owner = this.owners.get(agent)
        if (!owner) {
          owner = new OwnerCheck(this.agents, agent, record.owner)
          this.owners.set(agent, owner)
        }

        return owner
      },
    }
  }

  async ping(): Promise<void> {
    const leader = await this.agents.call((c, x) => c.status.leader({...x}), {
      deadlineMs: this.agents.options.connectTimeoutMs,
    })
    if (typeof leader.value !== 'string' || leader.value === '') {
      throw new ConsulError('consul has no leader', {
        transient: true,
        hint: 'wait for the servers to elect one; check that a majority of the Consul servers run',
      })
    }
  }

  write(record: OwnedRecord): Promise<Binding> {
    const {service, id} = record.instance
    return this.agents.about(service, async () => {
      const key = bindingKey({service, id})
      const binding = await ConsulBinding.create(this.context, record, this.bindings.get(key))
      this.bindings.set(key, binding)
      return binding
    })
  }

  rewrite(record: OwnedRecord, binding: Binding): Promise<void> {
    return this.agents.about(record.instance.service, () => own(binding).rewrite(record))
  }

  setHealth(record: OwnedRecord, binding: Binding, health: Health, output?: string): Promise<void> {
    return this.agents.about(record.instance.service, () => own(binding).setHealth(health, output))
  }

  /**
   * A record this process holds: from the agent's listing, shared by all of them within the period (the
   * lifecycle's presence check of thousands costs one request); any other: from the catalog.
   */
  async read(service: string, id: string): Promise<ReadResult | undefined> {
    const key = bindingKey({service, id})
    const binding = this.bindings.get(key)
    if (binding) {
      const found = await this.context.listings.records(binding.agent, [{service, id}], binding.refreshMs / 2)
      return found.get(key)
    }

    const records = await this.listRecords(service)
    return records.find((r) => (isSkipped(r) ? r.key === `${service}/${id}` : r.instance.id === id))
  }

  /** One /v1/agent/services per agent that holds some of `keys` (the agent this process bound them to). */
  async readMany(keys: readonly RecordKey[]): Promise<Map<string, ReadResult>> {
    const byAgent = new Map<number, RecordKey[]>()
    for (const key of keys) {
      const agent = this.bindings.get(`${key.service}\u0000${key.id}`)?.agent ?? this.agents.active
      byAgent.set(agent, [...(byAgent.get(agent) ?? []), key])
    }

    const found = new Map<string, ReadResult>()
    for (const [agent, wanted] of byAgent) {
      for (const [key, record] of await this.context.listings.records(agent, wanted, PRESENCE_MAX_AGE_MS))
        found.set(key, record)
    }

    return found
  }

  remove(service: string, id: string): Promise<boolean> {
    this.context.listings.removed(id)
    for (const [key, binding] of this.bindings) {
      if (key === `${service}\u0000${id}`) {
        this.bindings.delete(key)
        binding.release().catch(() => {})
      }
    }

    return this.agents.about(service, () => this.catalog.remove(service, id))
  }

  async listServices(): Promise<ServiceSummary[]> {
    const {value} = await this.agents.read((c, x) => c.catalog.services({...x, ...this.agents.reads()}))
    // another tool's `a/b` gets one warning (shared with the core's) and is not asked about
    const usable = foreignRecords(this.agents.options.log)
      .serviceNames(catalogNames(value).map((name) => ({name})))
      .map((n) => n.name)
    if (usable.length === 0) await this.explainEmpty()
    const summaries = await mapLimit(usable, 8, async (name) => {
      const instances = foreignRecords(this.agents.options.log).select(await this.listRecords(name))
      const passing = instances.filter((r) => r.instance.health === 'passing').length
      return {name, instances: instances.length, passing}
    })
    return summaries.filter((s) => s.instances > 0)
  }

  async listRecords(service: string): Promise<ReadResult[]> {
    const {value} = await this.agents.read((c, x) => c.health.service({service, ...x, ...this.agents.reads()}))
    const records = toRecords(value)
    if (records.length === 0) await this.explainEmpty()
    return records
  }

  watch(service: string | undefined, sink: DriverWatchSink): () => void {
    return new BlockingWatch(this.agents, sink).start(service)
  }

  cluster(): Promise<ClusterInfo> {
    return describeCluster(this.agents, this.catalog)
  }

  /** One subscription to the agents for every registration's listener (thousands of them at scale). */
  onEvent(listener: (event: DriverEvent) => void): () => void {
    this.eventListeners.add(listener)
    this.unsubscribeSwitch ??= this.agents.onSwitch((from, to, reason) => {
      const event: DriverEvent = {
        type: 'member-changed',
        detail: `consul agent ${this.agents.name(from)} failed (${reason}); now ${this.agents.name(to)}`,
      }
      for (const each of this.eventListeners) each(event)
    })
    return () => {
      this.eventListeners.delete(listener)
    }
  }

  async close(): Promise<void> {
    // a record still bound is left in place: its release gives it a TTL check of its own (critical within its TTL)
    await Promise.allSettled([...this.bindings.values()].map((binding) => binding.release()))
    this.bindings.clear()
    for (const owner of this.owners.values()) owner.stop()
    this.agents.close()
  }

  /**
   * Under ACLs Consul hides what a request may not read instead of refusing it: an empty answer to a request
   * without a token gets one warning when the agent refuses anonymous requests (agent:read on /v1/agent/self).
   */
  private async explainEmpty(): Promise<void> {
    if (this.agents.token !== undefined || this.aclExplained) return
    this.aclExplained = true
    try {
      await this.agents.attempt(this.agents.active, (c, x) => c.agent.self({...x}), this.agents.defaultAttemptMs)
    } catch (error) {
      if (error instanceof ConsulError && error.status === 403) {
        this.agents.options.log(
          'consul: the agent enforces ACLs and svc sent no token, so Consul may hide services from this answer: pass --token, CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE',
        )
      }
    }
  }
}

function own(binding: Binding): ConsulBinding {
  if (!(binding instanceof ConsulBinding)) throw new BugError('a binding of another backend reached the consul driver')
  return binding
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
