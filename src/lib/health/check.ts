import http from 'node:http'
import https from 'node:https'
import net from 'node:net'

import type {CheckSpec, Health} from '../registry/types.js'

export interface CheckResult {
  health: Health
  output: string
}

/** One HTTP check: 2xx passing, 429 warning, anything else or no answer critical (Consul's rules). */
export function httpCheck(url: string, timeoutMs: number): Promise<CheckResult> {
  return new Promise((resolve) => {
    const client = url.startsWith('https:') ? https : http
    const request = client.get(url, {timeout: timeoutMs, headers: {'user-agent': 'svc-health-check'}}, (response) => {
      response.resume()
      const status = response.statusCode ?? 0
      const health: Health = status >= 200 && status < 300 ? 'passing' : status === 429 ? 'warning' : 'critical'
      resolve({health, output: `HTTP GET ${url}: ${status}`})
    })
    request.on('timeout', () => request.destroy(new Error(`timed out after ${timeoutMs} ms`)))
    request.on('error', (error) => resolve({health: 'critical', output: `HTTP GET ${url}: ${error.message}`}))
  })
}

/** One TCP check: passing when a connection opens within the timeout. */
export function tcpCheck(target: string, timeoutMs: number): Promise<CheckResult> {
  const colon = target.lastIndexOf(':')
  const host = target.slice(0, colon).replaceAll(/^\[|\]$/g, '')
  const port = Number(target.slice(colon + 1))
  return new Promise((resolve) => {
    const socket = net.connect({host, port, timeout: timeoutMs})
    const done = (result: CheckResult): void => {
      socket.destroy()
      resolve(result)
    }

    socket.once('connect', () => done({health: 'passing', output: `TCP connect ${target}: success`}))
    socket.once('timeout', () => done({health: 'critical', output: `TCP connect ${target}: timed out`}))
    socket.once('error', (error) => done({health: 'critical', output: `TCP connect ${target}: ${error.message}`}))
  })
}

export function runCheck(spec: CheckSpec): Promise<CheckResult> {
  if (spec.http) return httpCheck(spec.http, spec.timeoutMs)
  if (spec.tcp) return tcpCheck(spec.tcp, spec.timeoutMs)
  return Promise.resolve({health: 'passing', output: 'no check'})
}

/**
 * Runs a check every interval and reports each result; for backends without native checks the
 * registering process runs them itself. Returns the function that stops it.
 */
export function scheduleChecks(spec: CheckSpec, report: (result: CheckResult) => Promise<void> | void): () => void {
  let stopped = false
  let timer: NodeJS.Timeout | undefined
  const tick = async (): Promise<void> => {
    const result = await runCheck(spec)
    if (stopped) return
    try {
      await report(result)
    } finally {
      if (!stopped) timer = setTimeout(tick, spec.intervalMs)
    }
  }

  timer = setTimeout(tick, 0)
  return () => {
    stopped = true
    clearTimeout(timer)
  }
}
