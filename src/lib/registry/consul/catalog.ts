import {sleep} from '../options.js'
import type {Agents, Answer} from './agents.js'
import {ConsulError, forgotten} from './errors.js'
import {asEntries, type HealthEntry} from './records.js'

/** After a write, how long to wait for Consul's catalog (anti-entropy sync) to show it. */
const SETTLE_MS = 3000

interface AgentSelf {
  Config?: {NodeName?: string}
}

/** Which Consul node each agent of the list is (learnt from /v1/agent/self), and removal of instances by node. */
export class Catalog {
  /** Node name of each agent of `hosts`. */
  readonly nodeNames = new Map<number, string>()

  constructor(private readonly agents: Agents) {}

  /** Node name of an agent (cached); undefined when it does not answer. */
  async nodeName(agent: number, timeoutMs = this.agents.defaultAttemptMs, fresh = false): Promise<string | undefined> {
    const known = this.nodeNames.get(agent)
    if (known !== undefined && !fresh) return known
    try {
      const self = (await this.agents.attempt(agent, (c, x) => c.agent.self({...x}), timeoutMs)) as AgentSelf
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
   * Node name → index of the agent (asked in parallel, cached); `fresh`: only the agents that answer right now,
   * while the cache keeps the names of those that answered before.
   */
  async agentsByNode(fresh = false): Promise<Map<string, number>> {
    const timeoutMs = Math.min(this.agents.defaultAttemptMs, 2000)
    const indexes = Array.from({length: this.agents.count}, (_, i) => i)
    const names = await Promise.all(indexes.map((i) => this.nodeName(i, timeoutMs, fresh)))
    const result = new Map<string, number>()
    for (const [i, name] of names.entries()) {
      if (name !== undefined) result.set(name, i)
    }

    return result
  }

  /** Removes every entry of `service`/`id`, on whichever nodes hold it; false when there was none. */
  async remove(service: string, id: string): Promise<boolean> {
    const {agent, value} = await this.agents.call((c, x) => c.health.service({service, ...x, ...this.agents.reads()}))
    const matches = asEntries(value).filter((e) => e.Service.ID === id)
    if (matches.length === 0) return false
    const nodes = await this.agentsByNode()
    for (const entry of matches) await this.removeFromNode(entry.Node.Node, id, nodes.get(entry.Node.Node))
    await this.settle(service, agent, (entries) => !entries.some((e) => e.Service.ID === id))
    return true
  }

  /** Removes a service instance from one node: through that node's agent when svc knows it, else from the catalog. */
  async removeFromNode(node: string | undefined, id: string, agent: number | undefined): Promise<void> {
    if (agent !== undefined) {
      try {
        await this.agents.attempt(agent, (c, x) => c.agent.service.deregister({id, ...x}), this.agents.defaultAttemptMs)
        return
      } catch (error) {
        // someone removed it already (another svc deregister, or the agent lost it): the goal is reached
        if (error instanceof ConsulError && forgotten(error)) return
        if (!(error instanceof ConsulError) || !error.unreachable || node === undefined) throw error
      }
    }

    if (node === undefined) throw new ConsulError(`cannot tell the consul node that holds ${id}`, {transient: false})
    await this.agents.call((c, x) => c.catalog.deregister({node, serviceid: id, ...x}), {
      attemptMs: this.agents.options.requestTimeoutMs,
    })
  }

  /**
   * Waits (blocking query on the agent that took the write) until the catalog shows what was written, so that a
   * read right after a write sees it; gives up quietly after SETTLE_MS.
   */
  async settle(service: string, agent: number, done: (entries: HealthEntry[]) => boolean): Promise<void> {
    const deadline = Date.now() + SETTLE_MS
    let index = 0n
    for (;;) {
      const left = deadline - Date.now()
      if (left <= 0) return
      let answer: Answer
      try {
        answer = await this.agents.attemptWithHeaders(
          agent,
          (c, x) => c.health.service({service, ...x, ...this.agents.reads(index, left)}),
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
}

export function consulIndex(headers: Answer['headers']): bigint | undefined {
  const raw = headers['x-consul-index']
  const text = Array.isArray(raw) ? raw[0] : raw
  if (text === undefined || !/^\d+$/.test(text)) return undefined
  return BigInt(text)
}
