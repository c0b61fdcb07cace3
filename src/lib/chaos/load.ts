import http from 'node:http'
import https from 'node:https'

import {sleep} from '../cluster/process.js'
import {UserError} from '../errors.js'

export interface LoadSummary {
  url: string
  ratePerSecond: number
  sent: number
  /** Network errors, timeouts and 5xx answers. */
  failed: number
  /** Answers by status code, plus `error` for requests that got none. */
  statuses: Record<string, number>
  firstFailureAt?: string
  lastFailureAt?: string
}

export function checkLoadUrl(url: string): URL {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new UserError(`invalid --proxy URL "${url}"`, 'give an http:// URL, e.g. http://127.0.0.1:8080/web/')
  }

  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    throw new UserError(`invalid --proxy URL "${url}"`, 'give an http:// or https:// URL')
  return parsed
}

function get(url: URL, timeoutMs: number): Promise<number> {
  const client = url.protocol === 'https:' ? https : http
  return new Promise((resolve, reject) => {
    const request = client.get(url, {agent: false, timeout: timeoutMs, headers: {connection: 'close'}}, (response) => {
      response.resume()
      response.once('end', () => resolve(response.statusCode ?? 0))
      response.once('error', reject)
    })
    request.once('timeout', () => request.destroy(new Error(`no answer within ${timeoutMs} ms`)))
    request.once('error', reject)
  })
}

/**
 * A bounded load: GET `url` at a fixed rate (requests overlap when answers are slow), at most `maxRequests`,
 * until stopped or `maxMs` passed; resolves when the last request settled.
 */
export class Load {
  private running = false
  private done: Promise<void> | undefined
  readonly summary: LoadSummary

  constructor(
    private readonly url: URL,
    private readonly ratePerSecond = 20,
    private readonly maxRequests = 2000,
    private readonly maxMs = 120_000,
    private readonly timeoutMs = 2000,
  ) {
    this.summary = {url: url.toString(), ratePerSecond, sent: 0, failed: 0, statuses: {}}
  }

  start(): void {
    this.running = true
    this.done = this.run()
  }

  private async run(): Promise<void> {
    const started = Date.now()
    const pending: Array<Promise<void>> = []
    const gap = 1000 / this.ratePerSecond
    while (this.running && this.summary.sent < this.maxRequests && Date.now() - started < this.maxMs) {
      this.summary.sent++
      pending.push(this.one())
      await sleep(gap)
    }

    await Promise.all(pending)
  }

  private async one(): Promise<void> {
    let key: string
    try {
      const status = await get(this.url, this.timeoutMs)
      key = String(status)
      if (status >= 500) this.fail()
    } catch {
      key = 'error'
      this.fail()
    }

    this.summary.statuses[key] = (this.summary.statuses[key] ?? 0) + 1
  }

  private fail(): void {
    const now = new Date().toISOString()
    this.summary.failed++
    this.summary.firstFailureAt ??= now
    this.summary.lastFailureAt = now
  }

  async stop(): Promise<LoadSummary> {
    this.running = false
    await this.done
    return this.summary
  }
}
