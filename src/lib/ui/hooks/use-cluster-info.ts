import {useEffect, useState} from 'react'

import {errorMessage} from '../../errors.js'
import type {ClusterInfo, Registry} from '../../registry/types.js'

export interface ClusterInfoState {
  /** The last answer; kept while later calls fail. */
  info?: ClusterInfo
  /** Why the last call failed; cleared by the next answer. */
  error?: string
}

/** Asks the registry for its members and leader now and every `intervalMs`; failures are returned, never thrown. */
export function useClusterInfo(registry: Registry, intervalMs = 5000): ClusterInfoState {
  const [state, setState] = useState<ClusterInfoState>({})

  useEffect(() => {
    let stopped = false
    let timer: NodeJS.Timeout | undefined
    // never rejects: failures become state
    const poll = async (): Promise<void> => {
      try {
        const info = await registry.cluster()
        if (!stopped) setState({info})
      } catch (error) {
        if (!stopped) setState((prev) => ({info: prev.info, error: errorMessage(error)}))
      }

      // the next call starts after this one ends, so a slow backend never has two in flight
      if (!stopped) timer = setTimeout(poll, intervalMs)
    }

    poll()
    return () => {
      stopped = true
      clearTimeout(timer)
    }
  }, [registry, intervalMs])

  return state
}
