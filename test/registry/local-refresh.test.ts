import {mkdtempSync, rmSync, statSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterEach, describe, expect, it} from 'vitest'

import {localRegistry} from '../helpers/local.js'
import {refreshPeriod, withDefaults} from '../../src/lib/registry/options.js'

describe('refreshPeriod', () => {
  it('uses the refresh asked for when it is below the TTL', () => {
    expect(refreshPeriod(30_000, 10_000, 200)).toBe(10_000)
    expect(refreshPeriod(30_000, 150, 200)).toBe(150)
  })

  it('falls back to a third of the TTL, with a floor, when none is asked for or it would let the TTL run out', () => {
    expect(refreshPeriod(30_000, undefined, 200)).toBe(10_000)
    expect(refreshPeriod(30_000, 30_000, 200)).toBe(10_000)
    expect(refreshPeriod(30_000, 0, 200)).toBe(10_000)
    expect(refreshPeriod(300, undefined, 200)).toBe(200)
  })
})

describe('local registry heartbeat', () => {
  let dir = ''
  afterEach(() => rmSync(dir, {recursive: true, force: true}))

  it('touches the instance file every refreshMs', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'svc-local-refresh-'))
    const registry = localRegistry({kind: 'local', dir}, withDefaults())
    const handle = await registry.register(
      {service: 'beat', address: '127.0.0.1', port: 9000},
      {ttlMs: 10_000, refreshMs: 100},
    )
    const file = registry.instancePath('beat', handle.instance.id)
    const seen = new Set<number>()
    const until = Date.now() + 1000
    while (Date.now() < until) {
      seen.add(statSync(file).mtimeMs)
      await new Promise((resolve) => {
        setTimeout(resolve, 20)
      })
    }

    // a third of the TTL would touch it not once in this second
    expect(seen.size).toBeGreaterThanOrEqual(5)
    await handle.close()
    await registry.close()
  })
})
