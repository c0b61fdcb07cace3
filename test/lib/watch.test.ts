import {describe, expect, it} from 'vitest'

import {diffSnapshots, toSnapshot} from '../../src/lib/registry/diff.js'
import {EventQueue} from '../../src/lib/registry/stream.js'
import type {ServiceInstance, WatchEvent} from '../../src/lib/registry/types.js'
import {snapshotWatch, type WatchSink} from '../../src/lib/registry/watch.js'

const inst = (id: string, extra: Partial<ServiceInstance> = {}): ServiceInstance => ({
  service: 'web',
  id,
  address: '127.0.0.1',
  port: 80,
  tags: [],
  meta: {},
  health: 'passing',
  ...extra,
})

describe('diffSnapshots', () => {
  it('reports removals, additions and changes, ignoring tag order', () => {
    const before = toSnapshot([inst('a', {tags: ['x', 'y']}), inst('b'), inst('c')])
    const after = toSnapshot([inst('a', {tags: ['y', 'x']}), inst('b', {health: 'critical'}), inst('d')])
    expect(diffSnapshots(before, after).map((e) => [e.type, 'instance' in e ? e.instance.id : ''])).toEqual([
      ['removed', 'c'],
      ['changed', 'b'],
      ['added', 'd'],
    ])
  })
})

describe('EventQueue', () => {
  it('delivers pushed items in order and ends on return()', async () => {
    let closed = 0
    const queue = new EventQueue<number>(() => closed++)
    queue.push(1)
    const pending = queue.next()
    expect(await pending).toEqual({done: false, value: 1})
    const waiting = queue.next()
    queue.push(2)
    expect(await waiting).toEqual({done: false, value: 2})
    await queue.return()
    expect(await queue.next()).toEqual({done: true, value: undefined})
    expect(closed).toBe(1)
  })

  it('rejects the reader when ended with an error', async () => {
    const queue = new EventQueue<number>()
    const waiting = queue.next()
    queue.end(new Error('boom'))
    await expect(waiting).rejects.toThrow('boom')
  })
})

describe('snapshotWatch', () => {
  it('turns full states into a snapshot and then differences, and stops the loop on abort', async () => {
    let sink: WatchSink | undefined
    let stopped = false
    const controller = new AbortController()
    const stream = snapshotWatch({signal: controller.signal}, undefined, (s) => {
      sink = s
      return () => {
        stopped = true
      }
    })
    sink!.publish([inst('a')])
    sink!.publish([inst('a'), inst('b')])
    sink!.status('reconnecting', 'member gone')
    sink!.publish([inst('a'), inst('b')])
    sink!.publish([inst('b')])
    const events: WatchEvent[] = []
    for (let i = 0; i < 4; i++) events.push((await stream.next()).value as WatchEvent)
    expect(events.map((e) => e.type)).toEqual(['snapshot', 'added', 'status', 'removed'])
    controller.abort()
    expect(stopped).toBe(true)
    expect((await stream.next()).done).toBe(true)
  })
})
