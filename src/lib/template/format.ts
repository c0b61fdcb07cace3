import type {StreamEvent} from '../events.js'

/** One stderr line for an event of `svc template` (without --json, where the events are NDJSON on stdout). */
export function formatTemplateEvent(event: StreamEvent): string {
  const f = event as Record<string, unknown>
  switch (event.type) {
    case 'rendered': {
      return `rendered ${String(f.out)} (${String(f.bytes)} bytes) from ${String(f.template)}`
    }

    case 'exec': {
      const what = f.ok ? `ran ${JSON.stringify(f.command)}` : `command ${JSON.stringify(f.command)} failed`
      return `${what}: ${String(f.detail)} after ${String(f.ms)} ms`
    }

    case 'error': {
      return `${String(f.message)} (kept the last good ${String(f.out)})`
    }

    case 'watching': {
      const n = Number(f.instances)
      return `watching ${String(f.services)} services (${n} instance${n === 1 ? '' : 's'}) on ${String(f.backend)} for ${String(f.templates)} template(s)`
    }

    case 'backend': {
      return `watch ${String(f.state)}: ${String(f.detail)}`
    }

    default: {
      return JSON.stringify(event)
    }
  }
}
