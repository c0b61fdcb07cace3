import {connect} from 'node:net'
import {networkInterfaces} from 'node:os'

import {UserError} from './errors.js'

/**
 * The address `svc register` advertises when none is given: loopback for the local backend (same machine),
 * else this host's first non-internal IPv4 address, as registrator's -ip defaults to the host's.
 */
export function defaultAddress(local: boolean): string {
  if (local) return '127.0.0.1'
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) {
      if (a.family === 'IPv4' && !a.internal) return a.address
    }
  }

  return '127.0.0.1'
}

export function checkUrl(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('not http')
    return parsed.toString()
  } catch {
    throw new UserError(`invalid --check-http "${url}"`, 'give a path such as /health or an http:// URL')
  }
}

/** Sends `command` (a ZooKeeper four-letter word) and resolves with everything the server wrote before closing. */
export function tcpCommand(
  host: string,
  port: number,
  command: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    const socket = connect({host, port, signal})
    socket.setTimeout(timeoutMs, () => {
      socket.destroy(new SilentError(`no answer to ${command} from ${host}:${port} within ${timeoutMs} ms`))
    })
    socket.once('connect', () => {
      socket.end(command)
    })
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.once('error', reject)
    socket.once('close', (hadError) => {
      if (!hadError) resolve(Buffer.concat(chunks).toString('utf8'))
    })
  })
}

class SilentError extends Error {}

/** How a TCP server answered a probe: what it wrote, or why it did not answer. */
export type ProbeOutcome =
  {state: 'answered'; text: string} | {state: 'refused' | 'not-found' | 'silent' | 'failed'; detail: string}

/** What the errors of a probe mean for whoever would connect: refused and unresolvable are known at once. */
const PROBE_ERRORS: ReadonlyMap<string, 'refused' | 'not-found'> = new Map([
  ['EAI_AGAIN', 'not-found'],
  ['EAI_NONAME', 'not-found'],
  ['ECONNREFUSED', 'refused'],
  ['ENOTFOUND', 'not-found'],
])

/** Sends `command` and classifies the outcome; never rejects, and never takes longer than `timeoutMs` (or `signal`). */
export async function probeTcp(
  host: string,
  port: number,
  command: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<ProbeOutcome> {
  try {
    const text = await tcpCommand(host, port, command, timeoutMs, signal)
    // a server that closes without a word is not serving (a proxy in front of a dead one does that)
    if (text === '') return {state: 'failed', detail: `${host}:${port} closed the connection without answering`}
    return {state: 'answered', text}
  } catch (error) {
    const code = error instanceof Error && 'code' in error && typeof error.code === 'string' ? error.code : ''
    const message = error instanceof Error ? error.message : String(error)
    const state = PROBE_ERRORS.get(code) ?? (error instanceof SilentError ? 'silent' : 'failed')
    return {state, detail: code && !message.includes(code) ? `${code}: ${message}` : message}
  }
}
