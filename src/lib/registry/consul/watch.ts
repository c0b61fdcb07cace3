import {setMaxListeners} from 'node:events'

import type {DriverWatchSink} from '../core/driver.js'
import {backoffDelay, sleep} from '../options.js'
import {type Agents, WAIT_MS} from './agents.js'
import {consulIndex} from './catalog.js'
import type {Lane} from './clients.js'
import {ConsulError, toConsulError} from './errors.js'
import {toRecords} from './records.js'
import {AllServicesWatch, type Loops, type Query} from './watch-all.js'

/** The first query after an error waits only briefly, so that the recovery shows at once. */
const RESUME_WAIT_MS = 1000

/** Reports a watch's connection state once per change, for all of its loops together. */
class WatchConnection {
  private state: 'connected' | 'initial' | 'reconnecting' = 'initial'
  private agent = -1

  constructor(
    private readonly sink: DriverWatchSink,
    private readonly agents: Agents,
  ) {}

  connected(agent: number): void {
    if (this.state === 'connected' && this.agent === agent) return
    this.state = 'connected'
    this.agent = agent
    this.sink.status('connected', `agent ${this.agents.name(agent)}`)
  }

  reconnecting(error: ConsulError): void {
    if (this.state === 'reconnecting') return
    this.state = 'reconnecting'
    this.sink.status('reconnecting', error.message)
  }
}

/** A blocking query's wait, spread over [3/4, 1] of WAIT_MS so that idle queries do not all return together. */
function jitteredWait(): number {
  return Math.round(WAIT_MS * (0.75 + Math.random() * 0.25))
}

/**
 * Consul's blocking queries: one loop for a service; for everything, the two bulk queries of AllServicesWatch and
 * bounded reads of the services they name.
 */
export class BlockingWatch implements Loops {
  private readonly connection: WatchConnection

  constructor(
    private readonly agents: Agents,
    private readonly sink: DriverWatchSink,
  ) {
    this.connection = new WatchConnection(sink, agents)
  }

  /** Starts watching; returns the function that stops it. */
  start(service: string | undefined): () => void {
    const controller = new AbortController()
    // one listener per request in flight on it: bounded by the read concurrency, the two loops and the nodes
    setMaxListeners(0, controller.signal)
    const run =
      service === undefined
        ? new AllServicesWatch(this.agents, this.sink, this, controller.signal).run()
        : this.loop(
            controller.signal,
            (c, x, read) => c.health.service({service, ...x, ...read}),
            (body) => this.sink.publish(toRecords(body), service),
            0n,
            'own',
          )
    run.catch((error: unknown) => {
      if (!controller.signal.aborted) this.sink.fail(error)
    })
    return () => controller.abort()
  }

  /** Runs `task` until it succeeds: transient errors back off and fail over; others are thrown. */
  async retrying<T>(signal: AbortSignal, task: (agent: number) => Promise<T>): Promise<T> {
    let failures = 0
    for (;;) {
      const agent = this.agents.active
      try {
        const value = await task(agent)
        this.connection.connected(agent)
        return value
      } catch (error) {
        if (signal.aborted) throw error
        const failure = error instanceof ConsulError ? error : toConsulError(error, this.agents.errorContext(agent))
        if (!failure.transient) throw failure
        this.connection.reconnecting(failure)
        if (failure.unreachable || failures > 0) this.agents.failOver(agent, failure)
        await sleep(backoffDelay(this.agents.options.retry, failures++), signal)
      }
    }
  }

  /**
   * One blocking-query loop from `index`: an answer whose index moved goes to `onValue` (a query that timed out
   * with the same index is no news); errors back off and fail over, then resume from the last index.
   */
  async loop(
    signal: AbortSignal,
    query: Query,
    onValue: (body: unknown, index: bigint, previous: bigint) => void,
    from = 0n,
    lane: Lane = 'shared',
  ): Promise<void> {
    let index = from
    let failures = 0
    while (!signal.aborted) {
      const agent = this.agents.active
      const started = Date.now()
      const waitMs = failures > 0 ? RESUME_WAIT_MS : jitteredWait()
      try {
        const answer = await this.agents.attemptWithHeaders(
          agent,
          (c, x) => query(c, x, this.agents.reads(index, waitMs)),
          waitMs + waitMs / 16 + this.agents.defaultAttemptMs,
          signal,
          lane,
        )
        failures = 0
        this.connection.connected(agent)
        const next = consulIndex(answer.headers)
        if (next === undefined || next !== index || index === 0n) onValue(answer.body, next ?? 0n, index)
        // no index, or an early answer without change: never spin
        if ((next === undefined || next === index) && Date.now() - started < 1000) await sleep(1000, signal)
        // an index that goes backwards (a server restored a snapshot) restarts with a non-blocking read
        index = next === undefined || next < index ? 0n : next
      } catch (error) {
        if (signal.aborted) return
        const failure = error instanceof ConsulError ? error : toConsulError(error, this.agents.errorContext(agent))
        if (!failure.transient) throw failure
        this.connection.reconnecting(failure)
        if (failure.unreachable || failures > 0) this.agents.failOver(agent, failure)
        await sleep(backoffDelay(this.agents.options.retry, failures++), signal)
      }
    }
  }
}
