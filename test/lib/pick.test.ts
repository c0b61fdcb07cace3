import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {describe, expect, it} from 'vitest'

import {pickInstance, pickWeightedRandom} from '../../src/lib/balancer/pick.js'
import type {ServiceInstance} from '../../src/lib/registry/types.js'
import {withPickDefault} from '../../src/lib/resolve.js'

const inst = (port: number, weight?: string): ServiceInstance => ({
  service: 'web',
  id: `web-${port}`,
  address: '127.0.0.1',
  port,
  tags: [],
  meta: weight === undefined ? {} : {weight},
  health: 'passing',
})

describe('pick', () => {
  it('weights random picks by the weight meta value', () => {
    const list = [inst(1, '0'), inst(2, '3'), inst(3)]
    const counts = new Map<number, number>()
    let seed = 0
    const random = (): number => {
      seed = (seed * 9301 + 49_297) % 233_280
      return seed / 233_280
    }

    for (let i = 0; i < 4000; i++) {
      const port = pickWeightedRandom(list, random).port
      counts.set(port, (counts.get(port) ?? 0) + 1)
    }

    expect(counts.get(1) ?? 0).toBe(0)
    expect(counts.get(2)! / counts.get(3)!).toBeGreaterThan(2.5)
    expect(counts.get(2)! / counts.get(3)!).toBeLessThan(3.5)
  })

  it('rotates round-robin across separate calls through its state file', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'svc-pick-'))
    const list = [inst(1), inst(2), inst(3)]
    const ports = []
    for (let i = 0; i < 4; i++) ports.push((await pickInstance(list, 'round-robin', dir))!.port)
    expect(ports).toEqual([1, 2, 3, 1])
    expect(await pickInstance([], 'first', dir)).toBeUndefined()
  })

  it('lets --pick stand without a strategy', () => {
    expect(withPickDefault(['web', '--pick'])).toEqual(['web', '--pick', 'random'])
    expect(withPickDefault(['--pick', 'web'])).toEqual(['--pick', 'random', 'web'])
    expect(withPickDefault(['web', '--pick', 'first'])).toEqual(['web', '--pick', 'first'])
  })
})
