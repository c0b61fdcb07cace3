import {stripVTControlCharacters} from 'node:util'

import {type StreamEvent, streamEvent} from '../events.js'
import type {AgentEvent} from './types.js'

/** One human line for an agent event, without the time: the non-TTY log and the live view's event log. */
export function formatAgentEvent(e: AgentEvent): string {
  switch (e.type) {
    case 'registered': {
      const i = e.instance
      const health = i.health === 'passing' ? '' : ` (${i.health})`
      return `registered ${i.service} ${i.id} at ${hostPort(i.address, i.port)}${health} from container ${e.container}`
    }

    case 'deregistered': {
      return `deregistered ${e.service} ${e.id} (container ${e.container}: ${oneLine(e.reason)})`
    }

    case 'health': {
      const output = oneLine(e.output)
      return `health ${e.health}: ${e.service} ${e.id}${output ? `: ${output}` : ''}`
    }

    case 'docker': {
      return `docker ${e.state}${detail(e.detail)}`
    }

    case 'backend': {
      return `backend ${e.state}${detail(e.detail)}`
    }

    case 'resync': {
      return `synced with Docker in ${Math.round(e.durationMs)} ms: ${e.registered} registered, ${e.removed} removed`
    }

    case 'event-lag': {
      return `docker event lag ${Math.round(e.ms)} ms`
    }

    case 'error': {
      const message = oneLine(e.message)
      // the agent's messages usually name the container already
      const where = e.container && !message.includes(e.container) ? ` (container ${e.container})` : ''
      return `error${where}: ${message}`
    }
  }
}

/** The event in the NDJSON schema of every svc stream: its time as ISO 8601, like watch's and register's. */
export function agentStreamEvent(e: AgentEvent): StreamEvent {
  const {ts, ...fields} = e
  return streamEvent(e.type, fields, new Date(ts))
}

/** A log line for stderr: ISO time, then the event. */
export function formatAgentLogLine(e: AgentEvent): string {
  return `${new Date(e.ts).toISOString()} ${formatAgentEvent(e)}`
}

/** HH:MM:SS in local time, for the live view. */
export function formatClock(ts: number): string {
  const d = new Date(ts)
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':')
}

/** Event-lag reports come with every Docker event: metrics, not actions, so logs and the view skip them. */
export function isActionEvent(e: AgentEvent): boolean {
  return e.type !== 'event-lag'
}

function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`
}

function detail(text: string): string {
  const line = oneLine(text)
  return line ? `: ${line}` : ''
}

/** Container output and driver messages may hold newlines or escape sequences; a log line must stay one line. */
function oneLine(text: string): string {
  let out = ''
  for (const ch of stripVTControlCharacters(text)) {
    const code = ch.codePointAt(0)!
    out += code < 0x20 || code === 0x7f ? ' ' : ch
  }

  return out.replaceAll(/\s+/g, ' ').trim()
}
