import type {ReactElement} from 'react'

/** Where and how a live view draws; tests pass fake streams. */
export interface MountOptions {
  /** Unmounts the view when aborted (SIGTERM, the work behind it stopped). */
  signal?: AbortSignal
  stdin?: NodeJS.ReadStream
  stdout?: NodeJS.WriteStream
  stderr?: NodeJS.WriteStream
  /** Print console.* output above the view instead of through it; default true (tests turn it off). */
  patchConsole?: boolean
}

/**
 * Mounts an ink app and resolves when it exits (the app handles q and Ctrl-C itself, so the caller's clean-up
 * runs) or `signal` aborts, with the terminal restored. Ink is imported here, only when a view is drawn.
 */
export async function mountInk(element: ReactElement, opts: MountOptions): Promise<void> {
  if (opts.signal?.aborted) return
  const {render} = await import('ink')
  const app = render(element, {
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
