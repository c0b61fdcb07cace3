import type {AgentEvent, AgentSnapshot} from './types.js'

/** What the live view and the metrics need from the agent: its events and its current state. */
export interface AgentSource {
  /** Calls `listener` for every event from now on; returns the unsubscribe function. */
  on(listener: (e: AgentEvent) => void): () => void
  snapshot(): AgentSnapshot
}
