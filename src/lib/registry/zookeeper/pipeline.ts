import {mapBounded} from '../../bounded.js'

/** Requests in flight at once on the session: enough to fill its one connection, without thousands queued. */
export const IN_FLIGHT = 256

/**
 * Maps `items` through `fn` with at most `limit` calls in flight, results in order. ZooKeeper answers a session's
 * requests in order on its one connection, so a bounded pipeline costs about one round trip per `limit` items.
 */
export async function pipelined<T, R>(
  items: readonly T[],
  fn: (item: T) => Promise<R>,
  limit = IN_FLIGHT,
): Promise<R[]> {
  return mapBounded(items, limit, fn)
}
