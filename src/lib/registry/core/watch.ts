import type {ServiceInstance, WatchEvent, WatchOptions} from '../types.js'
import {diffSnapshots, type Snapshot, sortInstances, toSnapshot} from './diff.js'
import type {DriverWatchSink} from './driver.js'
import type {ForeignRecords} from './foreign.js'
import {EventQueue} from './stream.js'

export interface SnapshotWatchOptions extends WatchOptions {
  /** Reports the records the driver could not read, once each. */
  foreign: ForeignRecords
}

/**
 * Builds a watch stream from a driver's native loop that reports full states (of everything watched, or of one
 * service). Diffing full states, rather than relaying raw notifications, makes resumption after a reconnect
 * lossless and free of duplicates. `start` returns the function that stops the loop.
 */
export function snapshotWatch(
  opts: SnapshotWatchOptions,
  start: (sink: DriverWatchSink) => () => void,
): AsyncIterableIterator<WatchEvent> {
  const loop: {stop?: () => void} = {}
  let current: Snapshot | undefined
  const queue = new EventQueue<WatchEvent>(() => {
    opts.signal?.removeEventListener('abort', onAbort)
    loop.stop?.()
  })
  const onAbort = (): void => queue.end()
  const sink: DriverWatchSink = {
    publish(records, service) {
      if (queue.closed) return
      const instances = opts.foreign.select(records).map((r) => r.instance)
      const next = merge(current, instances, service)
      if (current === undefined) {
        queue.push({type: 'snapshot', instances: sortInstances([...next.values()])})
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

/** The new state: everything published, or the current state with one service's part replaced. */
function merge(current: Snapshot | undefined, instances: ServiceInstance[], service: string | undefined): Snapshot {
  const published = toSnapshot(instances.filter((i) => service === undefined || i.service === service))
  if (service === undefined || current === undefined) return published
  const next: Snapshot = new Map()
  for (const [key, instance] of current) if (instance.service !== service) next.set(key, instance)
  for (const [key, instance] of published) next.set(key, instance)
  return next
}
