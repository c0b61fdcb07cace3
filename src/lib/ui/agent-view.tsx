import type {AgentSource} from '../docker/source.js'

export interface AgentViewOptions {
  /** Backend URI for the header. */
  backend: string
  /** Unmounts the view when aborted (the agent stopped, SIGTERM). */
  signal?: AbortSignal
  /** Streams to draw on and read keys from; default the process's (tests pass fakes). */
  stdin?: NodeJS.ReadStream
  stdout?: NodeJS.WriteStream
  stderr?: NodeJS.WriteStream
  /** Print console.* output above the view instead of through it; default true (tests turn it off). */
  patchConsole?: boolean
}

/**
 * Mounts `svc agent`'s live view and resolves when the user presses q or Ctrl-C, or `signal` aborts, with the
 * terminal restored. Ink and React load here, not when this module loads: only a terminal pays for them.
 */
export async function renderAgentView(agent: AgentSource, opts: AgentViewOptions): Promise<void> {
  if (opts.signal?.aborted) return
  const [{render}, {createElement}, {AgentApp}] = await Promise.all([
    import('ink'),
    import('react'),
    import('./components/AgentApp.js'),
  ])
  // Ctrl-C is handled by the app, like q: the caller decides what quitting means (stop the agent, deregister)
  const app = render(createElement(AgentApp, {source: agent, backend: opts.backend}), {
    exitOnCtrlC: false,
    patchConsole: opts.patchConsole ?? true,
    // ink spreads these over its defaults: an explicit undefined would replace process.stdout
    ...(opts.stdin && {stdin: opts.stdin}),
    ...(opts.stdout && {stdout: opts.stdout}),
    ...(opts.stderr && {stderr: opts.stderr}),
  })
  const onAbort = (): void => app.unmount()
  opts.signal?.addEventListener('abort', onAbort, {once: true})
  try {
    await app.waitUntilExit()
  } finally {
    opts.signal?.removeEventListener('abort', onAbort)
  }
}
