import {useEffect, useReducer} from 'react'

import type {DemoFeed} from '../../demo/runner.js'
import type {DemoEvent, StepInfo} from '../../demo/types.js'

export type StepState = 'pending' | 'running' | 'done' | 'failed' | 'skipped'

export interface StepView extends StepInfo {
  state: StepState
  summary?: string
  error?: string
  ms?: number
}

/** What the walkthrough draws: the step list, and the current (or last) step's explanation, commands and output. */
export interface DemoViewState {
  steps: StepView[]
  dir?: string
  backend?: string
  current?: number
  shows?: string
  /** The step's commands ($ lines) and output, in the order they came. */
  lines: DemoLine[]
  progress?: string
  /** The pause before the next step, in ms, while it lasts. */
  pausing?: number
  finished?: {ok: boolean; ms: number; error?: string}
}

export interface DemoLine {
  kind: 'command' | 'output'
  text: string
}

export const INITIAL_DEMO_STATE: DemoViewState = {steps: [], lines: []}

/** Folds one runner event into the view's state. */
export function demoReducer(state: DemoViewState, event: DemoEvent): DemoViewState {
  switch (event.type) {
    case 'plan': {
      return {
        ...state,
        dir: event.dir,
        backend: event.backend,
        steps: event.steps.map((s) => ({...s, state: 'pending'})),
      }
    }

    case 'step': {
      return {
        ...state,
        current: event.index,
        shows: event.shows,
        lines: [],
        progress: undefined,
        pausing: undefined,
        steps: update(state.steps, event.index, {state: 'running'}),
      }
    }

    case 'command': {
      return {...state, lines: [...state.lines, {kind: 'command', text: event.text}]}
    }

    case 'output': {
      return {
        ...state,
        lines: [...state.lines, ...event.text.split('\n').map((text) => ({kind: 'output' as const, text}))],
      }
    }

    case 'progress': {
      return {...state, progress: event.text}
    }

    case 'done': {
      return {
        ...state,
        progress: undefined,
        steps: update(state.steps, event.index, {state: 'done', summary: event.result.summary, ms: event.ms}),
      }
    }

    case 'failed': {
      return {
        ...state,
        progress: undefined,
        steps: update(state.steps, event.index, {state: 'failed', error: event.error, ms: event.ms}),
      }
    }

    case 'pause': {
      return {...state, pausing: event.ms}
    }

    case 'finished': {
      return {
        ...state,
        pausing: undefined,
        steps: state.steps.map((s) => (s.state === 'pending' ? {...s, state: 'skipped'} : s)),
        finished: {ok: event.ok, ms: event.ms, ...(event.error !== undefined && {error: event.error})},
      }
    }
  }
}

function update(steps: StepView[], index: number, changes: Partial<StepView>): StepView[] {
  return steps.map((s, i) => (i === index ? {...s, ...changes} : s))
}

/** The walkthrough's state, following the runner's events (those before mounting included). */
export function useDemo(feed: DemoFeed): DemoViewState {
  const [state, dispatch] = useReducer(demoReducer, INITIAL_DEMO_STATE)
  useEffect(() => feed.subscribe(dispatch), [feed])
  return state
}
