import {probeTcp, type ProbeOutcome} from '../../net.js'
import {MemberPool} from '../core/policy.js'
import type {BackendSpec} from '../spec.js'

export interface MemberOrder {
  /** The order in which a session tries the members: those that answered the probe first, fastest first. */
  preferred: string[]
  /** Set when no member can answer: every one refused the connection or could not be resolved. */
  failure?: string
}

/** Why no connection could be opened, from the probes' socket errors: known at once, never worth waiting for. */
const CONNECT_FAILURES: ReadonlyMap<string, string> = new Map([
  ['not-found', 'address not found'],
  ['refused', 'connection refused'],
])

/** A probe of the members started before the client library is loaded, for the registry's first session. */
export interface EarlyProbe {
  at: number
  order: Promise<MemberOrder>
  /** Drops the probes still waiting (the registry closed before its first session). */
  cancel: () => void
}

/** The member addresses of a spec, as the client's pool and the library name them. */
export function memberAddresses(spec: Extract<BackendSpec, {kind: 'zk'}>): string[] {
  return spec.hosts.map((h) => `${h.host}:${h.port}`)
}

/**
 * Starts probing the members of `spec` at once. openRegistry calls it before it loads the driver and its client
 * library (tens of milliseconds of module loading): the probes' round trips happen meanwhile, and the first
 * session starts as soon as the library is there.
 */
export function probeEarly(spec: Extract<BackendSpec, {kind: 'zk'}>, timeoutMs: number): EarlyProbe {
  const cancelled = new AbortController()
  const order = probeMembers(new MemberPool(memberAddresses(spec)), timeoutMs, cancelled.signal)
  return {at: Date.now(), order, cancel: () => cancelled.abort()}
}

/** Probe outcomes that are known at once and mean the member cannot serve. */
const FAILING = new Set<ProbeOutcome['state']>(['not-found', 'refused'])

/**
 * Before a session is opened, asks every member `ruok` at once: the session starts on the first that answers, so
 * a stopped (SIGSTOP) member costs nothing but its probe, and refused or unresolvable addresses are known at once
 * instead of after the connect timeout. Any answer counts (a server that does not allow `ruok` says so). The
 * members that did not answer follow in the pool's order (the one that answered last time first).
 */
export async function probeMembers(
  pool: MemberPool<string>,
  timeoutMs: number,
  cancel?: AbortSignal,
): Promise<MemberOrder> {
  const members = pool.order()
  const outcomes = new Map<string, ProbeOutcome>()
  const answered: string[] = []
  // the probes still waiting on a silent member are dropped once one member has answered
  const done = new AbortController()
  cancel?.addEventListener('abort', () => done.abort(), {once: true})
  await new Promise<void>((resolve) => {
    let pending = members.length
    for (const member of members) {
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
  const states = members.map((m) => outcomes.get(m)?.state)
  if (answered.length === 0 && states.every((s) => s !== undefined && FAILING.has(s))) {
    const [first, ...others] = states
    const failure =
      first !== undefined && others.every((s) => s === first)
        ? `${CONNECT_FAILURES.get(first)}: ${members.join(', ')}`
        : `no member answered: ${members.map((m) => `${m} ${shown(outcomes.get(m))}`).join(', ')}`
    return {preferred: [], failure}
  }

  return {preferred: [...answered, ...members.filter((m) => !answered.includes(m))]}
}

function shown(outcome: ProbeOutcome | undefined): string {
  return outcome?.state === 'not-found' ? 'not found' : (outcome?.state ?? 'unknown')
}
