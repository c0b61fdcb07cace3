import {useEffect, useRef, useState} from 'react'

import type {AgentSource} from '../../docker/source.js'
import type {AgentEvent, AgentSnapshot} from '../../docker/types.js'

export type BackendState = Extract<AgentEvent, {type: 'backend'}>['state']

export interface AgentViewState {
  snapshot: AgentSnapshot
  /** The last state the agent reported for the backend; undefined until it reports one. */
  backend?: BackendState
}

/** Follows an agent: re-reads its snapshot after events, at most once per `refreshMs`. */
export function useAgent(source: AgentSource, refreshMs = 100): AgentViewState {
  const backend = useRef<BackendState | undefined>(undefined)
  const [state, setState] = useState<AgentViewState>(() => {
    const snapshot = source.snapshot()
    backend.current = lastBackendState(snapshot.events)
    return {snapshot, backend: backend.current}
  })

  useEffect(() => {
    let timer: NodeJS.Timeout | undefined
    let last = 0
    const refresh = (): void => {
      timer = undefined
      last = Date.now()
      setState({snapshot: source.snapshot(), backend: backend.current})
    }

    // read the snapshot in a later task, not inside the agent's emit, so it sees the agent's finished update
    const schedule = (): void => {
      timer ??= setTimeout(refresh, Math.max(0, last + refreshMs - Date.now()))
    }

    const off = source.on((e) => {
      if (e.type === 'backend') backend.current = e.state
      schedule()
    })
    // catches what happened between the first render and subscribing
    schedule()
    return () => {
      off()
      clearTimeout(timer)
    }
  }, [source, refreshMs])

  return state
}

function lastBackendState(events: AgentEvent[]): BackendState | undefined {
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i]!
    if (e.type === 'backend') return e.state
  }

  return undefined
}
