import {probeTcp, type ProbeOutcome} from '../../net.js'
import type {HostPort} from '../spec.js'
import {CONNECT_FAILURES} from './errors.js'

export interface MemberOrder {
  /** Members to try first: the one that answered last time, then those that answered the probe, fastest first. */
  preferred: string[]
  /** Set when no member can answer: every one refused the connection or could not be resolved. */
  failure?: string
}

/** What a member's probe outcome means for the order in which a session tries the members. */
const FAILING = new Set<ProbeOutcome['state']>(['not-found', 'refused'])

/**
 * Remembers the member that answered and, before a session is opened, asks every member `ruok` at once: the
 * session starts on the first that answers, so a stopped (SIGSTOP) member costs nothing but its probe; refused and
 * unresolvable addresses are known at once instead of after the connect timeout. Any answer counts (a server that
 * does not allow `ruok` still says so).
 */
export class MemberPool {
  private readonly members: string[]
  private answered?: string

  constructor(hosts: readonly HostPort[]) {
    this.members = hosts.map((h) => `${h.host}:${h.port}`)
  }

  /** The member a session is connected to: tried first next time. */
  remember(member: string): void {
    if (this.members.includes(member)) this.answered = member
  }

  /** Probes every member at once, resolving as soon as one answers, or when all have failed, within `timeoutMs`. */
  async order(timeoutMs: number): Promise<MemberOrder> {
    const outcomes = new Map<string, ProbeOutcome>()
    const answered: string[] = []
    // the probes still waiting on a silent member are dropped once one member has answered
    const done = new AbortController()
    await new Promise<void>((resolve) => {
      let pending = this.members.length
      for (const member of this.members) {
        const colon = member.lastIndexOf(':')
        probeTcp(member.slice(0, colon), Number(member.slice(colon + 1)), 'ruok', timeoutMs, done.signal).then(
          (outcome) => {
            outcomes.set(member, outcome)
            if (outcome.state === 'answered') {
              answered.push(member)
              resolve()
            }

            if (--pending === 0) resolve()
          },
          resolve,
        )
      }
    })
    done.abort()
    const states = this.members.map((m) => outcomes.get(m)?.state)
    if (answered.length === 0 && states.every((s) => s !== undefined && FAILING.has(s))) {
      const [first, ...others] = states
      const failure =
        others.every((s) => s === first) && first !== undefined
          ? `${CONNECT_FAILURES.get(first)}: ${this.members.join(', ')}`
          : `no member answered: ${this.describe(outcomes)}`
      return {preferred: [], failure}
    }

    const remembered = this.answered !== undefined && answered.includes(this.answered) ? [this.answered] : []
    return {preferred: [...remembered, ...answered.filter((m) => !remembered.includes(m))]}
  }

  private describe(outcomes: Map<string, ProbeOutcome>): string {
    return this.members
      .map((m) => {
        const outcome = outcomes.get(m)
        return `${m} ${outcome?.state === 'not-found' ? 'not found' : (outcome?.state ?? 'unknown')}`
      })
      .join(', ')
  }
}
