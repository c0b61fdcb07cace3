import {instanceKey} from '../core/diff.js'
import {isSkipped, type ReadResult, type RecordKey} from '../core/driver.js'
import type {Agents} from './agents.js'
import type {Catalog} from './catalog.js'
import {toRecords} from './records.js'

/** What an agent holds: a listing, with this process's writes and removals made since it was asked for. */
export interface Listing {
  get(id: string): unknown
}

interface Fetched {
  at: number
  services: Map<string, unknown>
}

/**
 * What each agent holds, from one /v1/agent/services shared by every binding on it: one listing in flight, a
 * result reused within a period; this process's own writes and removals made after a listing was asked for
 * override what it says.
 */
export class AgentListings {
  private readonly fetched = new Map<number, Fetched>()
  private readonly inFlight = new Map<number, Promise<Fetched>>()
  /** This process's writes (a service) and removals (undefined) by agent and id, with when they were made. */
  private readonly local = new Map<number, Map<string, {at: number; service: unknown}>>()

  constructor(
    private readonly agents: Agents,
    private readonly catalog: Catalog,
  ) {}

  /** The agent's services, read at most `maxAgeMs` ago. */
  async get(agent: number, maxAgeMs: number): Promise<Listing> {
    let listing = this.fetched.get(agent)
    if (!listing || Date.now() - listing.at >= maxAgeMs) listing = await this.refetch(agent)
    const {at, services} = listing
    const local = this.local.get(agent)
    return {
      get(id) {
        const own = local?.get(id)
        return own && own.at >= at ? own.service : services.get(id)
      },
    }
  }

  /** A write this process made on `agent`. */
  added(agent: number, id: string, service: unknown): void {
    this.note(agent, id, service)
  }

  /** A removal this process made, on whichever agent. */
  removed(id: string): void {
    for (let agent = 0; agent < this.agents.count; agent++) this.note(agent, id, undefined)
  }

  private note(agent: number, id: string, service: unknown): void {
    let local = this.local.get(agent)
    if (!local) {
      local = new Map()
      this.local.set(agent, local)
    }

    local.set(id, {at: Date.now(), service})
  }

  private refetch(agent: number): Promise<Fetched> {
    let running = this.inFlight.get(agent)
    if (!running) {
      const at = Date.now()
      running = this.fetch(agent)
        .then((services) => {
          const listing = {at, services}
          this.fetched.set(agent, listing)
          // what the new listing shows already needs no override
          const local = this.local.get(agent)
          if (local) for (const [id, own] of local) if (own.at < at) local.delete(id)
          return listing
        })
        .finally(() => this.inFlight.delete(agent))
      this.inFlight.set(agent, running)
    }

    return running
  }

  /**
   * The records of `keys` as one agent holds them: what presence needs (the record and its owner). The listing
   * carries no check states, so health reads as unknown.
   */
  async records(agent: number, keys: readonly RecordKey[], maxAgeMs: number): Promise<Map<string, ReadResult>> {
    const services = await this.get(agent, maxAgeMs)
    const node = (await this.catalog.nodeName(agent)) ?? ''
    const wanted = new Set(keys.map((k) => instanceKey(k)))
    const entries = keys.flatMap((key) => {
      const service = services.get(key.id)
      return service && typeof service === 'object'
        ? [{Node: {Node: node, Address: ''}, Service: service, Checks: []}]
        : []
    })
    const found = new Map<string, ReadResult>()
    for (const record of toRecords(entries)) {
      if (isSkipped(record)) continue
      const key = instanceKey(record.instance)
      if (wanted.has(key)) found.set(key, {...record, instance: {...record.instance, health: 'unknown'}})
    }

    return found
  }

  private async fetch(agent: number): Promise<Map<string, unknown>> {
    const answer = await this.agents.attempt(
      agent,
      (c, x) => c.agent.service.list({...x}),
      Math.min(this.agents.options.requestTimeoutMs, this.agents.defaultAttemptMs * 2),
    )
    return new Map(answer && typeof answer === 'object' ? Object.entries(answer as Record<string, unknown>) : [])
  }
}
