import http from 'node:http'

import {errorMessage} from '../errors.js'

/** What a run of requests got back. */
export interface TrafficResult {
  sent: number
  ok: number
  /** Anything but a 200: an error status, a network error or a timeout. */
  failed: number
  /** 200 answers by the instance that gave them (its x-svc-instance header). */
  byInstance: Record<string, number>
  /** Answers by status code, `error` for none. */
  statuses: Record<string, number>
  /** The first few failures, for the report. */
  failures: string[]
  /** Each answered request: when it was sent (epoch ms) and who answered. */
  log: Array<{sentAt: number; instance: string}>
  ms: number
}

export interface TrafficOptions {
  url: string
  /** Requests at most. */
  max: number
  /** Requests in flight at once. */
  concurrency: number
  /** Stop sending after this long. */
  maxMs: number
  /** Per-request timeout. */
  timeoutMs: number
  signal?: AbortSignal
  /** Called after each answer, e.g. for a live counter. */
  onAnswer?: (result: TrafficResult) => void
}

/** A bounded stream of GET requests over keep-alive connections, counted per answering instance. */
export class Traffic {
  readonly result: TrafficResult = {
    sent: 0,
    ok: 0,
    failed: 0,
    byInstance: {},
    statuses: {},
    failures: [],
    log: [],
    ms: 0,
  }

  private stopped = false
  private done?: Promise<TrafficResult>
  private readonly agent: http.Agent

  constructor(private readonly opts: TrafficOptions) {
    this.agent = new http.Agent({keepAlive: true, maxSockets: opts.concurrency})
  }

  /** Starts sending; `finished()` resolves when the count, the time or `stop()` ends it. */
  start(): this {
    const started = Date.now()
    const worker = async (): Promise<void> => {
      while (
        !this.stopped &&
        !this.opts.signal?.aborted &&
        this.result.sent < this.opts.max &&
        Date.now() - started < this.opts.maxMs
      ) {
        this.result.sent++
        await this.one()
      }
    }

    this.done = Promise.all(Array.from({length: this.opts.concurrency}, () => worker())).then(() => {
      this.result.ms = Date.now() - started
      this.agent.destroy()
      return this.result
    })
    return this
  }

  finished(): Promise<TrafficResult> {
    if (!this.done) throw new Error('traffic not started')
    return this.done
  }

  /** Stops sending; requests in flight still count. */
  stop(): Promise<TrafficResult> {
    this.stopped = true
    return this.finished()
  }

  private async one(): Promise<void> {
    const sentAt = Date.now()
    const {result} = this
    let key: string
    try {
      const answer = await get(this.opts.url, this.agent, this.opts.timeoutMs)
      key = String(answer.status)
      if (answer.status === 200 && answer.instance !== undefined) {
        result.ok++
        result.byInstance[answer.instance] = (result.byInstance[answer.instance] ?? 0) + 1
        result.log.push({sentAt, instance: answer.instance})
      } else this.fail(`HTTP ${answer.status}: ${answer.body.trim().slice(0, 200)}`)
    } catch (error) {
      key = 'error'
      this.fail(errorMessage(error))
    }

    result.statuses[key] = (result.statuses[key] ?? 0) + 1
    this.opts.onAnswer?.(result)
  }

  private fail(why: string): void {
    this.result.failed++
    if (this.result.failures.length < 5) this.result.failures.push(why)
  }
}

function get(
  url: string,
  agent: http.Agent,
  timeoutMs: number,
): Promise<{status: number; instance?: string; body: string}> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, {agent, timeout: timeoutMs}, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => {
        body += chunk
      })
      response.once('end', () => {
        const header = response.headers['x-svc-instance']
        resolve({status: response.statusCode ?? 0, instance: typeof header === 'string' ? header : undefined, body})
      })
      response.once('error', reject)
    })
    request.once('timeout', () => request.destroy(new Error(`no answer within ${timeoutMs} ms`)))
    request.once('error', reject)
  })
}
