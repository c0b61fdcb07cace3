import type {ServiceInstance, WatchEvent, WatchOptions} from '../types.js'
import {sameInstance, sortInstances} from './diff.js'
import type {DriverWatchSink} from './driver.js'
import type {ForeignRecords} from './foreign.js'
import {EventQueue} from './stream.js'

export interface SnapshotWatchOptions extends WatchOptions {
  /** Reports the records the driver could not read, once each. */
  foreign: ForeignRecords
}

/** What every watch stream of this process has done since it started: tests and benchmarks read it. */
export interface WatchCounters {
  /** Publishes a driver made (one service's records, or everything's). */
  publishes: number
  /** Snapshots emitted (one per stream start). */
  snapshots: number
  /** added, removed and changed events emitted. */
  changes: number
}

const counters: WatchCounters = {changes: 0, publishes: 0, snapshots: 0}

/** A copy of this process's watch counters. */
export function watchCounters(): WatchCounters {
  return {...counters}
}

/** One service's instances by id. */
type ServiceState = Map<string, ServiceInstance>

/**
 * Builds a watch stream from a driver's native loop that reports full states (of everything watched, or of one
 * service). Diffing full states, rather than relaying raw notifications, makes resumption after a reconnect
 * lossless and free of duplicates; the state is kept per service, so a publish of one service costs that service's
 * size, not the registry's. `start` returns the function that stops the loop.
 */
export function snapshotWatch(
  opts: SnapshotWatchOptions,
  start: (sink: DriverWatchSink) => () => void,
): AsyncIterableIterator<WatchEvent> {
  const loop: {stop?: () => void} = {}
  let current: Map<string, ServiceState> | undefined
  const queue = new EventQueue<WatchEvent>(() => {
    opts.signal?.removeEventListener('abort', onAbort)
    loop.stop?.()
  })
  const onAbort = (): void => queue.end()
  const emit = (events: WatchEvent[]): void => {
    counters.changes += events.length
    for (const event of events) queue.push(event)
  }

  const sink: DriverWatchSink = {
    publish(records, service) {
      if (queue.closed) return
      counters.publishes++
      const published = group(opts.foreign.select(records), service)
      if (current === undefined) {
        current = published
        const all: ServiceInstance[] = []
        for (const state of published.values()) for (const instance of state.values()) all.push(instance)
        counters.snapshots++
        queue.push({type: 'snapshot', instances: sortInstances(all)})
        return
      }

      const removed: WatchEvent[] = []
      const rest: WatchEvent[] = []
      const names = service === undefined ? new Set([...current.keys(), ...published.keys()]) : [service]
      for (const name of names) {
        const after = published.get(name)
        diffService(current.get(name), after, removed, rest)
        if (after === undefined) current.delete(name)
        else current.set(name, after)
      }

      emit(removed)
      emit(rest)
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

/** The published instances by service (only `service`'s when one is named); an empty service has no entry. */
function group(
  records: ReadonlyArray<{instance: ServiceInstance}>,
  service: string | undefined,
): Map<string, ServiceState> {
  const byService = new Map<string, ServiceState>()
  for (const {instance} of records) {
    if (service !== undefined && instance.service !== service) continue
    let state = byService.get(instance.service)
    if (!state) {
      state = new Map()
      byService.set(instance.service, state)
    }

    state.set(instance.id, instance)
  }

  return byService
}

/** One service's differences: removals into `removed`, additions and changes into `rest`. */
function diffService(
  before: ServiceState | undefined,
  after: ServiceState | undefined,
  removed: WatchEvent[],
  rest: WatchEvent[],
): void {
  if (before) for (const [id, instance] of before) if (!after?.has(id)) removed.push({type: 'removed', instance})
  if (!after) return
  for (const [id, instance] of after) {
    const previous = before?.get(id)
    if (!previous) rest.push({type: 'added', instance})
    else if (!sameInstance(previous, instance)) rest.push({type: 'changed', instance, previous})
  }
}
