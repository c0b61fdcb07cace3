import {Box, Text, useApp} from 'ink'
import {useEffect} from 'react'

import {wrap} from '../../demo/format.js'
import type {DemoFeed} from '../../demo/runner.js'
import {formatDuration} from '../../duration.js'
import {type StepState, type StepView, useDemo} from '../hooks/use-demo.js'
import {useSpinner} from '../hooks/use-spinner.js'
import {useTerminalSize} from '../hooks/use-terminal-size.js'
import type {Color} from '../theme.js'

export interface DemoAppProps {
  feed: DemoFeed
  /** Columns to draw in; defaults to the terminal's (tests pass a fixed width). */
  width?: number
  /** Lines of the current step's commands and output kept on screen. */
  maxLines?: number
}

const MARK: Record<Exclude<StepState, 'running'>, {icon: string; color?: Color}> = {
  pending: {icon: '○'},
  done: {icon: '✓', color: 'green'},
  failed: {icon: '✗', color: 'red'},
  skipped: {icon: '-'},
}

/** `svc demo` on a terminal: the step list with ✓ or a spinner, then the current step's explanation and output. */
export function DemoApp({feed, width, maxLines = 16}: DemoAppProps) {
  const state = useDemo(feed)
  const {exit} = useApp()
  const {columns} = useTerminalSize(width)
  const spinner = useSpinner(state.finished === undefined)
  const cols = Math.min(columns, 120)

  useEffect(() => {
    if (!state.finished) return
    // a tick later, so the last frame is drawn before ink lets go of the terminal
    const timer = setTimeout(() => exit(), 20)
    return () => clearTimeout(timer)
  }, [state.finished, exit])

  const step = state.current === undefined ? undefined : state.steps[state.current]
  return (
    <Box flexDirection="column" width={cols}>
      <Text wrap="truncate-end">
        <Text bold>svc demo</Text>
        <Text dimColor> · a tour on a temporary local registry: no server, no Docker</Text>
      </Text>
      {state.backend ? (
        <Text
          dimColor
          wrap="truncate-end"
        >{`svc commands work on it meanwhile: export SVC_BACKEND=${state.backend}`}</Text>
      ) : null}
      <Box flexDirection="column" marginTop={1}>
        {state.steps.map((s, i) => (
          <StepLine index={i} key={s.id} spinner={spinner} step={s} />
        ))}
      </Box>
      {step && state.current !== undefined ? (
        <Box flexDirection="column" marginTop={1}>
          <Text bold wrap="truncate-end">{`${state.current + 1} · ${step.title}`}</Text>
          {wrap(state.shows ?? '', cols - 2).map((line) => (
            <Text dimColor key={line}>{`  ${line}`}</Text>
          ))}
          {state.lines.slice(-maxLines).map((line, i) =>
            line.kind === 'command' ? (
              // position keeps apart lines that repeat
              <Text color="cyan" key={`${i}:${line.text}`} wrap="truncate-end">{`  $ ${line.text}`}</Text>
            ) : (
              <Text key={`${i}:${line.text}`} wrap="truncate-end">{`    ${line.text}`}</Text>
            ),
          )}
          {state.progress ? <Text color="yellow" wrap="truncate-end">{`    ${state.progress}`}</Text> : null}
          {state.pausing ? <Text dimColor>{`  next step in ${formatDuration(state.pausing)}…`}</Text> : null}
        </Box>
      ) : null}
      {state.finished ? (
        <Box flexDirection="column" marginTop={1}>
          {state.finished.ok ? (
            <Text color="green" wrap="truncate-end">
              {`✓ demo finished in ${formatDuration(state.finished.ms)}: every step as expected, nothing left behind`}
            </Text>
          ) : (
            <Text color="red" wrap="truncate-end">{`✗ ${state.finished.error ?? 'the demo failed'}`}</Text>
          )}
          {state.finished.ok ? (
            <Text dimColor wrap="truncate-end">
              next, on your own registry: svc register web --port 8080 · svc resolve web · svc proxy · svc watch tree
            </Text>
          ) : null}
        </Box>
      ) : null}
    </Box>
  )
}

/** One step: its mark and title, and under it the outcome once there is one. */
function StepLine({step, index, spinner}: {step: StepView; index: number; spinner: string}) {
  const mark = step.state === 'running' ? {icon: spinner, color: 'yellow' as Color} : MARK[step.state]
  const note = step.state === 'failed' ? step.error : step.summary
  const faint = step.state === 'pending' || step.state === 'skipped'
  return (
    <>
      <Text wrap="truncate-end">
        <Text color={mark.color} dimColor={mark.color === undefined}>{` ${mark.icon} `}</Text>
        <Text bold={step.state === 'running'} dimColor={faint}>{`${index + 1}  ${step.title}`}</Text>
        {step.state === 'skipped' ? <Text dimColor> (skipped)</Text> : null}
      </Text>
      {note ? (
        <Text
          color={step.state === 'failed' ? 'red' : undefined}
          dimColor={step.state !== 'failed'}
          wrap="truncate-end"
        >
          {`      ${note}`}
        </Text>
      ) : null}
    </>
  )
}
