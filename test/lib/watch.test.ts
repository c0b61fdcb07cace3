import {describe, expect, it} from 'vitest'

import {diffSnapshots, toSnapshot} from '../../src/lib/registry/core/diff.js'
import type {DriverWatchSink} from '../../src/lib/registry/core/driver.js'
import {ForeignRecords} from '../../src/lib/registry/core/foreign.js'
import {EventQueue} from '../../src/lib/registry/core/stream.js'
import {snapshotWatch} from '../../src/lib/registry/core/watch.js'
import type {ServiceInstance, WatchEvent} from '../../src/lib/registry/types.js'

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

const records = (...instances: ServiceInstance[]) => instances.map((instance) => ({instance}))

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
    let sink: DriverWatchSink | undefined
    let stopped = false
    const controller = new AbortController()
    const foreign = new ForeignRecords(() => {})
    const stream = snapshotWatch({signal: controller.signal, foreign}, (s) => {
      sink = s
      return () => {
        stopped = true
      }
    })
    sink!.publish(records(inst('a')))
    sink!.publish(records(inst('a'), inst('b')))
    sink!.status('reconnecting', 'member gone')
    sink!.publish(records(inst('a'), inst('b')))
    sink!.publish(records(inst('b')))
    const events: WatchEvent[] = []
    for (let i = 0; i < 4; i++) events.push((await stream.next()).value as WatchEvent)
    expect(events.map((e) => e.type)).toEqual(['snapshot', 'added', 'status', 'removed'])
    controller.abort()
    expect(stopped).toBe(true)
    expect((await stream.next()).done).toBe(true)
  })
})

describe('snapshotWatch, one service at a time', () => {
  it('diffs only the service a publish names, and skips what it cannot read with one warning', async () => {
    let sink: DriverWatchSink | undefined
    const warnings: string[] = []
    const stream = snapshotWatch({foreign: new ForeignRecords((m) => warnings.push(m))}, (s) => {
      sink = s
      return () => {}
    })
    const other = inst('x', {service: 'api'})
    const bad = {skipped: true as const, key: '/services/a/b', reason: 'it is not a service name'}
    sink!.publish([{instance: inst('a')}, {instance: other}, bad])
    sink!.publish([{instance: inst('b')}, bad], 'web')
    const events: WatchEvent[] = []
    for (let i = 0; i < 3; i++) events.push((await stream.next()).value as WatchEvent)
    expect(events.map((e) => [e.type, 'instance' in e ? e.instance.id : ''])).toEqual([
      ['snapshot', ''],
      ['removed', 'a'],
      ['added', 'b'],
    ])
    expect(warnings).toEqual(['skipping /services/a/b: it is not a service name'])
    await stream.return!()
  })
})
