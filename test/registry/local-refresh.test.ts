import {mkdirSync, mkdtempSync, rmSync, statSync, utimesSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterEach, describe, expect, it} from 'vitest'

import {currentOwner} from '../../src/lib/registry/core/owner.js'
import {OWNERS_DIR} from '../../src/lib/registry/local/directory.js'
import {ownerFileName} from '../../src/lib/registry/local/owners.js'
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

  it("touches the owner's one heartbeat every refreshMs, and never the instance file", async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'svc-local-refresh-'))
    const registry = localRegistry({kind: 'local', dir}, withDefaults())
    const handle = await registry.register(
      {service: 'beat', address: '127.0.0.1', port: 9000},
      {ttlMs: 10_000, refreshMs: 100},
    )
    const file = registry.instancePath('beat', handle.instance.id)
    const beat = path.join(dir, OWNERS_DIR, ownerFileName(currentOwner()))
    const written = statSync(file).mtimeMs
    const seen = new Set<number>()
    const until = Date.now() + 1000
    while (Date.now() < until) {
      seen.add(statSync(beat).mtimeMs)
      await new Promise((resolve) => {
        setTimeout(resolve, 20)
      })
    }

    // a third of the TTL would touch it not once in this second
    expect(seen.size).toBeGreaterThanOrEqual(5)
    expect(statSync(file).mtimeMs).toBe(written)
    await handle.close()
    await registry.close()
  })

  it('reads a record of an svc before owner heartbeats by its own mtime, and lets it expire by it', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'svc-local-legacy-'))
    const registry = localRegistry({kind: 'local', dir}, withDefaults())
    const owner = {host: 'old-host', pid: 1, nonce: 'legacy'}
    const instance = {service: 'old', id: 'a', address: '127.0.0.1', port: 80, tags: [], meta: {}, health: 'passing'}
    mkdirSync(path.join(dir, 'old'), {recursive: true, mode: 0o700})
    const file = path.join(dir, 'old', 'a.json')
    writeFileSync(file, JSON.stringify({instance, owner, ttlMs: 5000}), {mode: 0o600})
    expect((await registry.listInstances('old')).map((i) => i.id)).toEqual(['a'])
    const old = new Date(Date.now() - 10_000)
    utimesSync(file, old, old)
    expect(await registry.listInstances('old')).toEqual([])
    await registry.close()
  })
})
