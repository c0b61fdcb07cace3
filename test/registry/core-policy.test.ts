import {describe, expect, it} from 'vitest'

import {BackendError} from '../../src/lib/errors.js'
import {type MemberCallPolicy, MemberPool, withMembers, withPolicy} from '../../src/lib/registry/core/policy.js'

/** The member did not answer: `final` when waiting does not change that (refused, not found). */
class NoAnswer extends BackendError {
  constructor(
    readonly member: string,
    readonly final = false,
  ) {
    super('test', `${member} does not answer`, {transient: true})
  }
}

const retry = {attempts: 2, initialDelayMs: 1, maxDelayMs: 5}
const transient = (): BackendError => new BackendError('etcd', 'member gone', {transient: true})

function policy(extra: Partial<MemberCallPolicy<string>> = {}): MemberCallPolicy<string> {
  return {
    deadlineMs: 1000,
    attemptMs: 200,
    retry,
    unreachable: (error) => error instanceof NoAnswer,
    hopeless: (round) =>
      [...round.values()].every((e) => e instanceof NoAnswer && e.final) ? new Error('refused everywhere') : undefined,
    noAnswer: (elapsedMs) => new Error(`no answer after ${elapsedMs} ms`),
    ...extra,
  }
}

/** Never settles until its signal aborts: a frozen member. */
function frozen(signal: AbortSignal | undefined): Promise<never> {
  return new Promise((_resolve, reject) => {
    signal?.addEventListener('abort', () => reject(new Error('cancelled')))
  })
}

/** Every member answers with its name, except `frozen`. */
function readFrom(member: string, _timeoutMs: number, signal: AbortSignal | undefined): Promise<string> {
  return member === 'frozen' ? frozen(signal) : Promise.resolve(member)
}

describe('the member policy', () => {
  it('starts from the member that answered last, so a frozen first member costs one timeout once', async () => {
    const pool = new MemberPool(['frozen', 'b', 'c'])
    const tried: string[] = []
    const moves: string[] = []
    const call = async (member: string): Promise<string> => {
      tried.push(member)
      if (member === 'frozen') throw new NoAnswer(member)
      return member
    }

    const watched = policy({movedOn: (from, to) => moves.push(`${from}->${to}`)})
    expect(await withMembers(pool, watched, call)).toEqual({member: 'b', value: 'b'})
    expect(await withMembers(pool, watched, call)).toEqual({member: 'b', value: 'b'})
    expect(tried).toEqual(['frozen', 'b', 'b'])
    expect(moves).toEqual(['frozen->b'])
    expect(pool.order()).toEqual(['b', 'c', 'frozen'])
  })

  it('says so at once when every member refuses, and after firstAnswerMs when none answers', async () => {
    const pool = new MemberPool(['a', 'b'])
    let started = Date.now()
    await expect(
      withMembers(pool, policy(), async (m) => {
        throw new NoAnswer(m, true)
      }),
    ).rejects.toThrow('refused everywhere')
    expect(Date.now() - started).toBeLessThan(100)
    started = Date.now()
    const hanging = policy({firstAnswerMs: 150, attemptMs: 50})
    await expect(
      withMembers(pool, hanging, async (m) => {
        throw new NoAnswer(m)
      }),
    ).rejects.toThrow(/^no answer after \d+ ms$/)
    expect(Date.now() - started).toBeGreaterThanOrEqual(140)
    expect(Date.now() - started).toBeLessThan(500)
  })

  it('retries a transient answer on the same member with backoff, and throws a permanent one at once', async () => {
    const pool = new MemberPool(['a', 'b'])
    const tried: string[] = []
    const noLeader = new BackendError('test', 'no cluster leader', {transient: true})
    await expect(
      withMembers(pool, policy(), async (m) => {
        tried.push(m)
        throw noLeader
      }),
    ).rejects.toBe(noLeader)
    // the first attempt and retry.attempts more, all on the member that answered
    expect(tried).toEqual(['a', 'a', 'a'])
    tried.length = 0
    const denied = new BackendError('test', 'denied', {transient: false})
    await expect(
      withMembers(pool, policy(), async (m) => {
        tried.push(m)
        throw denied
      }),
    ).rejects.toBe(denied)
    expect(tried).toEqual(['a'])
  })

  it('lets the backend explain a failure (a timeout that was a wait for a leader is an answer)', async () => {
    const pool = new MemberPool(['a', 'b'])
    const tried: string[] = []
    const explained = policy({
      explain: async (_member, error) =>
        error instanceof NoAnswer ? new BackendError('test', 'waits for a leader', {transient: false}) : error,
    })
    await expect(
      withMembers(pool, explained, async (m) => {
        tried.push(m)
        throw new NoAnswer(m)
      }),
    ).rejects.toThrow('waits for a leader')
    expect(tried).toEqual(['a'])
    expect(pool.current).toBe('a')
  })

  it('hedges a read: a frozen member costs hedgeMs, a refusing one nothing, and the member that answered is next', async () => {
    const pool = new MemberPool(['frozen', 'b', 'c'])
    const moves: Array<[string, string, unknown]> = []
    const hedged = policy({hedgeMs: 50, movedOn: (from, to, error) => moves.push([from, to, error])})
    let started = Date.now()
    expect(await withMembers(pool, hedged, readFrom)).toEqual({member: 'b', value: 'b'})
    const took = Date.now() - started
    expect(took).toBeGreaterThanOrEqual(45)
    expect(took).toBeLessThan(200)
    expect(moves).toEqual([['frozen', 'b', undefined]])
    expect(pool.current).toBe('b')

    const refusing = new MemberPool(['refused', 'b'])
    started = Date.now()
    const answer = await withMembers(refusing, hedged, async (member) => {
      if (member === 'refused') throw new NoAnswer(member, true)
      return member
    })
    expect(answer.member).toBe('b')
    expect(Date.now() - started).toBeLessThan(40)
  })

  it('hedged reads that all fail are retried in rounds, within the one deadline', async () => {
    const pool = new MemberPool(['a', 'b'])
    const tried: string[] = []
    let calls = 0
    const answer = await withMembers(pool, policy({hedgeMs: 20}), async (member) => {
      tried.push(member)
      if (++calls <= 2) throw new NoAnswer(member)
      return member
    })
    // a, b failed (one round), then the next round starts where the pool moved to: a again
    expect(tried).toEqual(['a', 'b', 'a'])
    expect(answer.member).toBe('a')
  })
})

describe('the policy', () => {
  it('retries transient errors within the deadline and throws permanent ones at once', async () => {
    const retry = {attempts: 3, initialDelayMs: 1, maxDelayMs: 5}
    let calls = 0
    const value = await withPolicy({backend: 'etcd', what: 'listing', deadlineMs: 1000, retry}, async () => {
      calls++
      if (calls < 3) throw transient()
      return 'ok'
    })
    expect([value, calls]).toEqual(['ok', 3])
    calls = 0
    const permanent = new BackendError('etcd', 'denied', {transient: false})
    await expect(
      withPolicy({backend: 'etcd', what: 'listing', deadlineMs: 1000, retry}, async () => {
        calls++
        throw permanent
      }),
    ).rejects.toBe(permanent)
    expect(calls).toBe(1)
    await expect(
      withPolicy({backend: 'etcd', what: 'listing', deadlineMs: 50, retry}, () => new Promise(() => {})),
    ).rejects.toThrow('listing took longer than 50 ms')
  })

  it('retries what `retryable` accepts without a deadline of its own, and stops when its signal aborts', async () => {
    const retry = {attempts: 5, initialDelayMs: 20, maxDelayMs: 20}
    const recoverable = new Error('UNAVAILABLE')
    const stop = new AbortController()
    let calls = 0
    const retryable = (error: unknown): boolean => error === recoverable
    const started = Date.now()
    await expect(
      withPolicy({backend: 'etcd', what: 'a call', retry, retryable, signal: stop.signal}, async () => {
        if (++calls === 2) setTimeout(() => stop.abort(), 5)
        throw recoverable
      }),
    ).rejects.toBe(recoverable)
    expect(calls).toBe(2)
    expect(Date.now() - started).toBeLessThan(200)
  })
})
