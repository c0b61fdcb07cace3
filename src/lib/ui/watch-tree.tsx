import type {MountOptions} from './mount.js'
import type {Registry} from '../registry/types.js'
import type {RetryOptions} from './hooks/use-registry-watch.js'

export interface WatchTreeOptions extends MountOptions {
  /** Backend URI for the header. */
  backend: string
  /** Watch one service instead of all. */
  service?: string
  /** Backoff between re-subscriptions when the watch stream fails. */
  retry?: RetryOptions
}

/**
 * Mounts `svc watch tree` and resolves when the user presses q or Ctrl-C, or `signal` aborts, with the terminal
 * restored. Ink and React load here, not when this module loads: only a terminal pays for them.
 */
export async function renderWatchTree(registry: Registry, opts: WatchTreeOptions): Promise<void> {
  if (opts.signal?.aborted) return
  const [{createElement}, {WatchApp}, {mountInk}] = await Promise.all([
    import('react'),
    import('./components/WatchApp.js'),
    import('./mount.js'),
  ])
  await mountInk(
    createElement(WatchApp, {registry, backend: opts.backend, service: opts.service, retry: opts.retry}),
    opts,
  )
}
