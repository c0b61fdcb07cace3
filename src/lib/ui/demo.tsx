import type {DemoFeed} from '../demo/runner.js'
import type {MountOptions} from './mount.js'

/**
 * Mounts the `svc demo` walkthrough and resolves when the tour has finished and its last frame is drawn.
 * Ink and React load here, not when this module loads: only a terminal pays for them.
 */
export async function renderDemo(feed: DemoFeed, opts: MountOptions = {}): Promise<void> {
  const [{createElement}, {DemoApp}, {mountInk}] = await Promise.all([
    import('react'),
    import('./components/DemoApp.js'),
    import('./mount.js'),
  ])
  await mountInk(createElement(DemoApp, {feed}), opts)
}
