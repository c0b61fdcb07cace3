import type {MountOptions} from './mount.js'
import type {AgentSource} from '../docker/source.js'

export interface AgentViewOptions extends MountOptions {
  /** Backend URI for the header. */
  backend: string
}

/**
 * Mounts `svc agent`'s live view and resolves when the user presses q or Ctrl-C, or `signal` aborts, with the
 * terminal restored. Ink and React load here, not when this module loads: only a terminal pays for them.
 */
export async function renderAgentView(agent: AgentSource, opts: AgentViewOptions): Promise<void> {
  if (opts.signal?.aborted) return
  const [{createElement}, {AgentApp}, {mountInk}] = await Promise.all([
    import('react'),
    import('./components/AgentApp.js'),
    import('./mount.js'),
  ])
  await mountInk(createElement(AgentApp, {source: agent, backend: opts.backend}), opts)
}
