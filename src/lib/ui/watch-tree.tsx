import type {Registry} from '../registry/types.js'
import type {RetryOptions} from './hooks/use-registry-watch.js'

export interface WatchTreeOptions {
  /** Backend URI for the header. */
  backend: string
  /** Watch one service instead of all. */
  service?: string
  /** Unmounts the tree when aborted (SIGTERM). */
  signal?: AbortSignal
  /** Streams to draw on and read keys from; default the process's (tests pass fakes). */
  stdin?: NodeJS.ReadStream
  stdout?: NodeJS.WriteStream
  stderr?: NodeJS.WriteStream
  /** Print console.* output above the tree instead of through it; default true (tests turn it off). */
  patchConsole?: boolean
  /** Backoff between re-subscriptions when the watch stream fails. */
  retry?: RetryOptions
}

/**
 * Mounts `svc watch tree` and resolves when the user presses q or Ctrl-C, or `signal` aborts, with the terminal
 * restored. Ink and React load here, not when this module loads: only a terminal pays for them.
 */
export async function renderWatchTree(registry: Registry, opts: WatchTreeOptions): Promise<void> {
  if (opts.signal?.aborted) return
  const [{render}, {createElement}, {WatchApp}] = await Promise.all([
    import('ink'),
    import('react'),
    import('./components/WatchApp.js'),
  ])
  // Ctrl-C arrives as a key in raw mode; the app handles it like q so the caller's clean-up runs
  const app = render(
    createElement(WatchApp, {registry, backend: opts.backend, service: opts.service, retry: opts.retry}),
    {
      exitOnCtrlC: false,
      patchConsole: opts.patchConsole ?? true,
      // ink spreads these over its defaults: an explicit undefined would replace process.stdout
      ...(opts.stdin && {stdin: opts.stdin}),
      ...(opts.stdout && {stdout: opts.stdout}),
      ...(opts.stderr && {stderr: opts.stderr}),
    },
  )
  const onAbort = (): void => app.unmount()
  opts.signal?.addEventListener('abort', onAbort, {once: true})
  try {
    await app.waitUntilExit()
  } finally {
    opts.signal?.removeEventListener('abort', onAbort)
  }
}
