import {Box, Text, useApp, useInput, useStdin} from 'ink'

import type {AgentSource} from '../../docker/source.js'
import {useAgent} from '../hooks/use-agent.js'
import {useTerminalSize} from '../hooks/use-terminal-size.js'
import {AgentHeader} from './AgentHeader.js'
import {ContainerTable} from './ContainerTable.js'
import {EventLog} from './EventLog.js'

export interface AgentAppProps {
  source: AgentSource
  /** Backend URI for the header; defaults to the snapshot's. */
  backend?: string
  /** Columns to draw in; defaults to the terminal's (tests pass a fixed width). */
  width?: number
  /** Least time between redraws. */
  refreshMs?: number
  /** Called when the user presses q or Ctrl-C, before the app exits. */
  onQuit?: () => void
}

/** `svc agent`'s live view: header, containers with their services, last events; q or Ctrl-C quits. */
export function AgentApp({source, backend, width, refreshMs = 100, onQuit}: AgentAppProps) {
  const {snapshot, backend: backendState} = useAgent(source, refreshMs)
  const {columns, rows} = useTerminalSize(width)
  const {exit} = useApp()
  const {isRawModeSupported} = useStdin()

  useInput(
    (input, key) => {
      if (input === 'q' || (key.ctrl && input === 'c')) {
        onQuit?.()
        exit()
      }
    },
    {isActive: isRawModeSupported},
  )

  // keep the frame shorter than the terminal: taller frames make ink clear the screen on every redraw
  const eventLimit = rows === undefined ? 10 : Math.min(10, Math.max(3, rows - 16))
  const tableRows = rows === undefined ? undefined : Math.max(3, rows - 10 - eventLimit)

  return (
    <Box flexDirection="column" width={columns}>
      <AgentHeader
        backend={backend ?? snapshot.backend}
        backendState={backendState}
        containers={snapshot.containers}
        docker={snapshot.docker}
      />
      <Box flexDirection="column" marginTop={1}>
        <ContainerTable containers={snapshot.containers} maxRows={tableRows} />
      </Box>
      <Box flexDirection="column" marginTop={1}>
        <EventLog events={snapshot.events} limit={eventLimit} />
      </Box>
      <Box marginTop={1}>
        <Text dimColor>q quit</Text>
      </Box>
    </Box>
  )
}
