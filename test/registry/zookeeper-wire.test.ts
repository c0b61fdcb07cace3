import {Socket} from 'node:net'
import {describe, expect, it} from 'vitest'

import {batchWrites, readWholeFrames, type WireInternals} from '../../src/lib/registry/zookeeper/wire.js'

/** A length-prefixed frame as ZooKeeper sends it. */
function frame(body: string): Buffer {
  const bytes = Buffer.from(body)
  const prefix = Buffer.alloc(4)
  prefix.writeInt32BE(bytes.length)
  return Buffer.concat([prefix, bytes])
}

/** A connection manager that records what it is handed, on a socket of its own. */
function manager(): WireInternals & {seen: string[]} {
  const seen: string[] = []
  return {
    seen,
    socket: new Socket(),
    onSocketData(chunk: Buffer) {
      seen.push(chunk.toString('latin1'))
    },
  }
}

describe('ZooKeeper wire: whole frames in, batched writes out', () => {
  const frames = ['a', 'bb', '', 'c'.repeat(300), 'dddd']
  const stream = Buffer.concat(frames.map((body) => frame(body)))
  const expected = frames.map((body) => frame(body).toString('latin1'))

  it('hands the library each frame whole, however the stream is cut', () => {
    for (const size of [1, 2, 3, 5, 7, 64, stream.length]) {
      const cm = manager()
      readWholeFrames(cm)
      for (let at = 0; at < stream.length; at += size) cm.onSocketData(stream.subarray(at, at + size))
      expect(cm.seen, `chunks of ${size}`).toEqual(expected)
    }
  })

  it('drops a partial frame when the connection changes', () => {
    const cm = manager()
    readWholeFrames(cm)
    cm.onSocketData(frame('old').subarray(0, 5))
    cm.socket = new Socket()
    cm.onSocketData(frame('new'))
    expect(cm.seen).toEqual([frame('new').toString('latin1')])
  })

  it('corks the socket for the rest of the turn, once', async () => {
    const cm = manager()
    const corked = new WeakSet<Socket>()
    batchWrites(cm, corked)
    batchWrites(cm, corked)
    expect(cm.socket?.writableCorked).toBe(1)
    await new Promise<void>((resolve) => {
      process.nextTick(resolve)
    })
    expect(cm.socket?.writableCorked).toBe(0)
  })
})
