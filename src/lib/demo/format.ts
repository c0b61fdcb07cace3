import {streamEvent} from '../events.js'
import {formatDuration} from '../duration.js'
import type {DemoEvent, StepId} from './types.js'

/** Requests per instance as a bar chart, one line each, bars scaled to the busiest instance. */
export function spreadChart(byInstance: Record<string, number>, ids: readonly string[], width = 30): string {
  const counts = ids.map((id) => byInstance[id] ?? 0)
  const most = Math.max(1, ...counts)
  const idWidth = Math.max(...ids.map((id) => id.length))
  const countWidth = String(most).length
  return ids
    .map((id, i) => {
      const n = counts[i]!
      const bar = '█'.repeat(Math.round((n / most) * width))
      return `${id.padEnd(idWidth)}  ${String(n).padStart(countWidth)}  ${bar}`.trimEnd()
    })
    .join('\n')
}

/** Counts as "20 / 20 / 20", in instance order. */
export function spreadText(byInstance: Record<string, number>, ids: readonly string[]): string {
  return ids.map((id) => byInstance[id] ?? 0).join(' / ')
}

/** Breaks text into lines of at most `width` characters at spaces. */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = []
  let line = ''
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line)
      line = word
    } else line = line === '' ? word : `${line} ${word}`
  }

  if (line !== '') lines.push(line)
  return lines
}

const INDENT = '    '

function indent(text: string, prefix = INDENT): string {
  return text
    .split('\n')
    .map((l) => (l === '' ? l : prefix + l))
    .join('\n')
}

/** Renders events as plain text for pipes, logs and CI: one call per event, undefined when it prints nothing. */
export function plainRenderer(width = 100): (event: DemoEvent) => string | undefined {
  let total = 0
  return (event) => {
    switch (event.type) {
      case 'plan': {
        total = event.steps.length
        return [
          `svc demo: ${total} steps on a temporary local registry, ${event.dir}`,
          // read from a pipe or a log, the registry is already gone: point at the commands, not at it
          'Each step shows the svc command that does the same; the registry is removed at the end, so try them on your own registry.',
        ].join('\n')
      }

      case 'step': {
        return [
          '',
          `[${event.index + 1}/${total}] ${event.title}`,
          ...wrap(event.shows, width - INDENT.length).map((l) => INDENT + l),
        ].join('\n')
      }

      case 'command': {
        return `${INDENT}$ ${event.text}`
      }

      case 'output': {
        return indent(event.text, INDENT + '  ')
      }

      case 'done': {
        return `  ✓ ${event.result.summary} (${formatDuration(event.ms)})`
      }

      case 'failed': {
        return `  ✗ ${event.error}`
      }

      case 'finished': {
        return event.ok
          ? `\nsvc demo: done in ${formatDuration(event.ms)}; every step as expected, nothing left behind.`
          : undefined
      }

      default: {
        return undefined
      }
    }
  }
}

/** One JSON record per finished step (and one at the end), for --json, in the schema of every svc stream. */
export interface StepRecord {
  ts: string
  type: 'step'
  step: number
  id: StepId
  title: string
  ok: boolean
  ms: number
  commands: string[]
  summary?: string
  error?: string
  data?: Record<string, unknown>
}

/** Renders events as NDJSON: a line per step result, and a last line with the outcome. */
export function jsonRenderer(): (event: DemoEvent) => string | undefined {
  let title = ''
  let commands: string[] = []
  let dir = ''
  return (event) => {
    switch (event.type) {
      case 'plan': {
        dir = event.dir
        return undefined
      }

      case 'step': {
        title = event.title
        commands = []
        return undefined
      }

      case 'command': {
        commands.push(event.text)
        return undefined
      }

      case 'done':
      case 'failed': {
        const record: StepRecord = {
          ts: new Date().toISOString(),
          type: 'step',
          step: event.index + 1,
          id: event.id,
          title,
          ok: event.type === 'done',
          ms: event.ms,
          commands,
          ...(event.type === 'done' ? {summary: event.result.summary, data: event.result.data} : {error: event.error}),
        }
        return JSON.stringify(record)
      }

      case 'finished': {
        return JSON.stringify({
          ...streamEvent('finished'),
          ok: event.ok,
          ms: event.ms,
          dir,
          ...(event.error && {error: event.error}),
        })
      }

      default: {
        return undefined
      }
    }
  }
}
