import {diffSnapshots, type Snapshot, sortInstances, toSnapshot} from './diff.js'
import {EventQueue} from './stream.js'
import type {ServiceInstance, WatchEvent, WatchOptions} from './types.js'

/** What a backend's native notification loop reports into a watch stream. */
export interface WatchSink {
  /** The full current state of what is watched; the first call yields the snapshot, later ones the differences. */
  publish(instances: ServiceInstance[]): void
  status(state: 'connected' | 'reconnecting' | 'session-lost', detail: string): void
  /** Ends the stream with an error (a permanent failure). */
  fail(error: unknown): void
  readonly closed: boolean
}

/**
 * Builds a watch stream from a backend loop that reports full states. Diffing full states (rather than relaying
 * raw notifications) makes resumption after a reconnect lossless and free of duplicates.
 * `start` returns the function that stops the loop.
 */
export function snapshotWatch(
  opts: WatchOptions,
  filter: ((instance: ServiceInstance) => boolean) | undefined,
  start: (sink: WatchSink) => () => void,
): AsyncIterableIterator<WatchEvent> {
  const loop: {stop?: () => void} = {}
  let current: Snapshot | undefined
  const queue = new EventQueue<WatchEvent>(() => {
    opts.signal?.removeEventListener('abort', onAbort)
    loop.stop?.()
  })
  const onAbort = (): void => queue.end()
  const sink: WatchSink = {
    publish(instances) {
      if (queue.closed) return
      const selected = filter ? instances.filter((i) => filter(i)) : instances
      const next = toSnapshot(selected)
      if (current === undefined) {
        queue.push({type: 'snapshot', instances: sortInstances([...selected])})
      } else {
        for (const event of diffSnapshots(current, next)) queue.push(event)
      }

      current = next
    },
    status(state, detail) {
      queue.push({type: 'status', state, detail})
    },
    fail(error) {
      queue.end(error)
    },
    get closed() {
      return queue.closed
    },
  }

  if (opts.signal?.aborted) {
    queue.end()
    return queue
  }

  opts.signal?.addEventListener('abort', onAbort, {once: true})
  loop.stop = start(sink)
  if (queue.closed) loop.stop()
  return queue
}
