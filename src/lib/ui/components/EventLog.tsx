import {Text} from 'ink'

import {formatAgentEvent, formatClock, isActionEvent} from '../../docker/format.js'
import type {AgentEvent} from '../../docker/types.js'
import {eventColor} from '../theme.js'

export interface EventLogProps {
  events: AgentEvent[]
  limit?: number
}

/** The agent's last actions, newest last, one line each with its time. */
export function EventLog({events, limit = 10}: EventLogProps) {
  const shown = events.filter((e) => isActionEvent(e)).slice(-limit)
  return (
    <>
      <Text bold>EVENTS</Text>
      {shown.length === 0 ? <Text dimColor>no events yet</Text> : null}
      {shown.map((e, i) => (
        // events carry no id; position and time tell them apart within one frame
        <Text key={`${i}:${e.ts}`} wrap="truncate-end">
          <Text dimColor>{formatClock(e.ts)}</Text>
          {'  '}
          <Text color={eventColor(e)}>{formatAgentEvent(e)}</Text>
        </Text>
      ))}
    </>
  )
}
