import {instanceKey} from '../core/diff.js'
import {isSkipped, type ReadResult, type RecordKey} from '../core/driver.js'
import type {Agents} from './agents.js'
import type {Catalog} from './catalog.js'
import {toRecords} from './records.js'

type Listing = Map<string, unknown>

/**
 * What each agent holds, from one /v1/agent/services shared by every binding on it: one listing in flight, a
 * result reused within a period; this process's own writes and removals are applied to it as they happen.
 */
export class AgentListings {
  private readonly listings = new Map<number, {at: number; services: Listing}>()
  private readonly inFlight = new Map<number, Promise<Listing>>()

  constructor(
    private readonly agents: Agents,
    private readonly catalog: Catalog,
  ) {}

  /** The agent's services, read at most `maxAgeMs` ago. */
  async get(agent: number, maxAgeMs: number): Promise<Listing> {
    const known = this.listings.get(agent)
    if (known && Date.now() - known.at < maxAgeMs) return known.services
    let running = this.inFlight.get(agent)
    if (!running) {
      const started = Date.now()
      running = this.fetch(agent)
        .then((services) => {
          this.listings.set(agent, {at: started, services})
          return services
        })
        .finally(() => this.inFlight.delete(agent))
      this.inFlight.set(agent, running)
    }

    return running
  }

  /** A write this process made: the agent holds it now (a listing still in flight may not show it: none is reused). */
  added(agent: number, id: string, service: unknown): void {
    this.listings.get(agent)?.services.set(id, service)
    if (this.inFlight.has(agent)) this.listings.delete(agent)
  }

  /** A removal this process made, on whichever agent. */
  removed(id: string): void {
    for (const listing of this.listings.values()) listing.services.delete(id)
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

  private async fetch(agent: number): Promise<Listing> {
    const answer = await this.agents.attempt(
      agent,
      (c, x) => c.agent.service.list({...x}),
      Math.min(this.agents.options.requestTimeoutMs, this.agents.defaultAttemptMs * 2),
    )
    return new Map(answer && typeof answer === 'object' ? Object.entries(answer as Record<string, unknown>) : [])
  }
}
