import {mkdtempSync, rmSync, statSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {afterAll, describe, expect, it} from 'vitest'

import {currentOwner} from '../../src/lib/registry/core/owner.js'
import {openRegistry} from '../../src/lib/registry/index.js'
import {OWNERS_DIR} from '../../src/lib/registry/local/directory.js'
import {ownerFileName} from '../../src/lib/registry/local/owners.js'
import type {Registry, RegistrationHandle} from '../../src/lib/registry/types.js'
import {closeAll, countedWatch, quietCounters, registerMany} from '../helpers/scale.js'

const N = 2000
const TTL_MS = 3000
const REFRESH_MS = 1000

describe('local registry at 2,000 instances', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'svc-scale-local-'))
  const opened: Registry[] = []
  let handles: RegistrationHandle[] = []

  afterAll(async () => {
    await closeAll(handles)
    await Promise.allSettled(opened.map((r) => r.close()))
    rmSync(dir, {recursive: true, force: true})
  })

  it('registers in seconds, and a heartbeat period passes with no watch event and no route rebuild', async () => {
    const registrar = await openRegistry(`local://${dir}`)
    const watcher = await openRegistry(`local://${dir}`)
    opened.push(registrar, watcher)
    const started = Date.now()
    handles = await registerMany(registrar, N, 'scale', {ttlMs: TTL_MS, refreshMs: REFRESH_MS})
    expect(Date.now() - started).toBeLessThan(15_000)

    const watch = countedWatch(watcher)
    try {
      expect(await watch.snapshot).toBe(N)
      const beat = path.join(dir, OWNERS_DIR, ownerFileName(currentOwner()))
      const firstBeat = statSync(beat).mtimeMs
      const before = quietCounters(watch.table)
      const eventsBefore = watch.events.length
      // past the TTL: were instance liveness still read from file times, everything would have expired by now
      await sleep(TTL_MS + REFRESH_MS)
      expect(statSync(beat).mtimeMs).toBeGreaterThan(firstBeat)
      expect(quietCounters(watch.table)).toEqual(before)
      expect(watch.events.slice(eventsBefore)).toEqual([])

      // one change is one event and one route update, still no rebuild
      const [first] = handles
      await first!.close()
      handles = handles.slice(1)
      const deadline = Date.now() + 5000
      while (watch.events.length === eventsBefore && Date.now() < deadline) await sleep(20)
      expect(watch.events.slice(eventsBefore).map((e) => e.type)).toEqual(['removed'])
      expect(quietCounters(watch.table)).toEqual({...before, changes: before.changes + 1, updates: before.updates + 1})
    } finally {
      watch.stop()
    }
  }, 30_000)
})
