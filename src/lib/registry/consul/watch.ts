import type Consul from 'consul'

import type {DriverWatchSink, ReadResult} from '../core/driver.js'
import {backoffDelay, sleep} from '../options.js'
import {type Agents, type ReadOptions, type RequestExtra, WAIT_MS} from './agents.js'
import {consulIndex} from './catalog.js'
import {ConsulError, toConsulError} from './errors.js'
import {foreignRecords} from '../core/foreign.js'
import {catalogNames, toRecords} from './records.js'

/** The first query after an error waits only briefly, so that the recovery shows at once. */
const RESUME_WAIT_MS = 1000

type Query = (client: Consul, extra: RequestExtra, read: ReadOptions) => Promise<unknown>

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

/** Consul's blocking queries: one loop for a service, or the catalog's list plus one loop per service. */
export class BlockingWatch {
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
    const run =
      service === undefined
        ? this.watchAll(controller.signal)
        : this.watchService(service, controller.signal, (records) => this.sink.publish(records, service))
    run.catch((error: unknown) => {
      if (!controller.signal.aborted) this.sink.fail(error)
    })
    return () => controller.abort()
  }

  /**
   * One blocking-query loop: each answer goes to `onValue`; errors back off and fail over, then resume from the
   * last index.
   */
  private async loop(signal: AbortSignal, query: Query, onValue: (body: unknown) => void): Promise<void> {
    let index = 0n
    let failures = 0
    while (!signal.aborted) {
      const agent = this.agents.active
      const started = Date.now()
      const waitMs = failures > 0 ? RESUME_WAIT_MS : WAIT_MS
      try {
        const answer = await this.agents.attemptWithHeaders(
          agent,
          (c, x) => query(c, x, this.agents.reads(index, waitMs)),
          waitMs + waitMs / 16 + this.agents.defaultAttemptMs,
          signal,
        )
        failures = 0
        this.connection.connected(agent)
        onValue(answer.body)
        const next = consulIndex(answer.headers)
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

  private watchService(
    service: string,
    signal: AbortSignal,
    onRecords: (records: ReadResult[]) => void,
  ): Promise<void> {
    return this.loop(
      signal,
      (c, x, read) => c.health.service({service, ...x, ...read}),
      (body) => onRecords(toRecords(body)),
    )
  }

  /** The catalog's service list in one blocking loop, and one blocking loop per service. */
  private async watchAll(signal: AbortSignal): Promise<void> {
    const children = new Map<string, {controller: AbortController; records?: ReadResult[]}>()
    let ready = false
    const publish = (): void => {
      // the first snapshot waits for every service's first answer, so that it is complete
      if (!ready && [...children.values()].some((c) => c.records === undefined)) return
      ready = true
      this.sink.publish([...children.values()].flatMap((c) => c.records ?? []))
    }

    const start = (name: string): void => {
      const child: {controller: AbortController; records?: ReadResult[]} = {controller: new AbortController()}
      children.set(name, child)
      const stop = (): void => child.controller.abort()
      signal.addEventListener('abort', stop, {once: true})
      this.watchService(name, child.controller.signal, (records) => {
        if (children.get(name) !== child) return
        child.records = records
        publish()
      })
        .catch((error: unknown) => {
          if (!child.controller.signal.aborted) this.sink.fail(error)
        })
        .finally(() => signal.removeEventListener('abort', stop))
    }

    try {
      await this.loop(
        signal,
        (c, x, read) => c.catalog.services({...x, ...read}),
        (body) => {
          // another tool's `a/b` is warned about once and not watched
          const names = catalogNames(body).map((name) => ({name}))
          const usable = new Set(
            foreignRecords(this.agents.options.log)
              .serviceNames(names)
              .map((n) => n.name),
          )
          for (const [name, child] of children) {
            if (!usable.has(name)) {
              child.controller.abort()
              children.delete(name)
            }
          }

          for (const name of usable) if (!children.has(name)) start(name)
          publish()
        },
      )
    } finally {
      for (const child of children.values()) child.controller.abort()
    }
  }
}
