import type {ServiceInstance, WatchEvent, WatchOptions} from './types.js'
import {ForeignRecords} from './core/foreign.js'
import {snapshotWatch as coreWatch} from './core/watch.js'

/** The watch sink of the backends not yet ported onto core/: they publish decoded instances. */
export interface WatchSink {
  publish(instances: ServiceInstance[]): void
  status(state: 'connected' | 'reconnecting' | 'session-lost', detail: string): void
  fail(error: unknown): void
  readonly closed: boolean
}

/** core/watch.ts's snapshot watch for the backends not yet ported onto core/; goes with the last of them. */
export function snapshotWatch(
  opts: WatchOptions,
  filter: ((instance: ServiceInstance) => boolean) | undefined,
  start: (sink: WatchSink) => () => void,
): AsyncIterableIterator<WatchEvent> {
  return coreWatch({...opts, foreign: new ForeignRecords(() => {})}, (sink) =>
    start({
      publish: (instances) =>
        sink.publish(instances.filter((i) => !filter || filter(i)).map((instance) => ({instance}))),
      status: (state, detail) => sink.status(state, detail),
      fail: (error) => sink.fail(error),
      get closed() {
        return sink.closed
      },
    }),
  )
}
