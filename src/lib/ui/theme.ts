import type {AgentEvent} from '../docker/types.js'
import type {Health} from '../registry/types.js'

/** Ink colour names used by the views. */
export type Color = 'gray' | 'green' | 'red' | 'yellow'

export const HEALTH_COLOR: Record<Health, Color> = {
  passing: 'green',
  warning: 'yellow',
  critical: 'red',
  unknown: 'gray',
}

export const CONTAINER_COLOR: Record<'paused' | 'running' | 'stopped', Color> = {
  running: 'green',
  paused: 'yellow',
  stopped: 'gray',
}

/** Connection states of Docker and the backend: up is green, recovering yellow, down red. */
export const CONNECTION_COLOR: Record<string, Color> = {
  connected: 'green',
  restored: 'green',
  reconnecting: 'yellow',
  retrying: 'yellow',
  lost: 'red',
}

/** The colour of an event's line in the event log; undefined keeps the default. */
export function eventColor(e: AgentEvent): Color | undefined {
  switch (e.type) {
    case 'registered': {
      return 'green'
    }

    case 'deregistered': {
      return 'yellow'
    }

    case 'error': {
      return 'red'
    }

    case 'health': {
      return e.health === 'unknown' ? undefined : HEALTH_COLOR[e.health]
    }

    case 'docker':
    case 'backend': {
      return CONNECTION_COLOR[e.state]
    }

    default: {
      return undefined
    }
  }
}

/** Pads or cuts `text` to exactly `width` characters, marking a cut with an ellipsis. */
export function fit(text: string, width: number): string {
  if (text.length <= width) return text.padEnd(width)
  return width <= 1 ? text.slice(0, width) : `${text.slice(0, width - 1)}…`
}
