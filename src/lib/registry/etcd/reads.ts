import {type IKeyValue, Range} from 'etcd3'

import type {EtcdConnection} from './client.js'
import {scanRange} from './records.js'

/** Up to this many keys are read with one get each (in parallel); more with one range read over their span. */
const SINGLE_GETS = 16

/**
 * Reads keys in as few requests as etcd allows. Single reads asked for in the same turn of the event loop (every
 * registration checking at once after a driver event, a burst of registrations or removals) go out together.
 */
export class KeyReader {
  private batch?: {keys: Set<string>; done: Promise<Map<string, IKeyValue>>}

  constructor(private readonly connection: EtcdConnection) {}

  /** One key, read with the others asked for in this turn. */
  async get(key: string): Promise<IKeyValue | undefined> {
    let batch = this.batch
    if (!batch) {
      const keys = new Set<string>()
      const done = new Promise<void>((resolve) => {
        setImmediate(resolve)
      }).then(() => {
        this.batch = undefined
        return this.getMany(keys)
      })
      batch = {keys, done}
      this.batch = batch
    }

    batch.keys.add(key)
    return (await batch.done).get(key)
  }

  /** The keys that exist among `keys`: parallel gets for a few, else one paged range read over their span. */
  async getMany(keys: ReadonlySet<string>): Promise<Map<string, IKeyValue>> {
    const found = new Map<string, IKeyValue>()
    if (keys.size <= SINGLE_GETS) {
      // a few keys: parallel gets on the one connection cost less than a range over whatever lies between them
      await Promise.all(
        [...keys].map(async (key) => {
          const {kvs} = await this.connection.op((client) => client.get(key).exec())
          if (kvs[0]) found.set(key, kvs[0])
        }),
      )
      return found
    }

    const sorted = [...keys].map((k) => Buffer.from(k)).sort(Buffer.compare)
    const span = new Range(sorted[0]!, Buffer.concat([sorted.at(-1)!, Buffer.from([0])]))
    await scanRange(this.connection, span, (key, kv) => {
      if (keys.has(key)) found.set(key, kv)
    })
    return found
  }
}
