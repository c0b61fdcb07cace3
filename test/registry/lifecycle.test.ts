import {setTimeout as sleep} from 'node:timers/promises'
import {describe, expect, it} from 'vitest'

import {BackendError} from '../../src/lib/errors.js'
import type {
  Binding,
  Driver,
  DriverEvent,
  DriverLimits,
  OwnedRecord,
  ReadResult,
} from '../../src/lib/registry/core/driver.js'
import {instanceKey} from '../../src/lib/registry/core/diff.js'
import {CoreRegistry} from '../../src/lib/registry/core/registry.js'
import {withDefaults} from '../../src/lib/registry/options.js'

/** A backend in memory, for the lifecycle's timing rules: it can be cut off, and can emit driver events. */
class MemoryDriver implements Driver {
  readonly kind = 'etcd' as const
  readonly nativeChecks = false
  readonly description = 'memory://'
  readonly limits: DriverLimits
  readonly records = new Map<string, OwnedRecord>()
  unreachable = false
  writes = 0
  private readonly listeners = new Set<(event: DriverEvent) => void>()

  constructor(limits?: DriverLimits) {
    this.limits = limits ?? {defaultTtlMs: 3000, minTtlMs: 1000, refreshApplies: true}
  }

  async ping(): Promise<void> {
    this.reach()
  }

  async write(record: OwnedRecord): Promise<Binding> {
    this.reach()
    this.writes++
    this.records.set(record.instance.id, record)
    return {
      refresh: async () => {
        this.reach()
        return this.records.has(record.instance.id) ? 'ok' : 'missing'
      },
      async release() {},
    }
  }

  async rewrite(record: OwnedRecord): Promise<void> {
    this.reach()
    this.records.set(record.instance.id, record)
  }

  async read(_service: string, id: string): Promise<ReadResult | undefined> {
    this.reach()
    const record = this.records.get(id)
    return record && {instance: record.instance, owner: record.owner}
  }

  async remove(_service: string, id: string): Promise<boolean> {
    this.reach()
    return this.records.delete(id)
  }

  async listServices() {
    return []
  }

  async listRecords(): Promise<ReadResult[]> {
    return [...this.records.values()].map((r) => ({instance: r.instance, owner: r.owner}))
  }

  watch(): () => void {
    return () => {}
  }

  async cluster() {
    return {backend: this.kind, members: []}
  }

  onEvent(listener: (event: DriverEvent) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  emit(event: DriverEvent): void {
    for (const listener of this.listeners) listener(event)
  }

  async close(): Promise<void> {}

  private reach(): void {
    if (this.unreachable) throw new BackendError('etcd', 'no member answers', {transient: true})
  }
}

function open(driver: MemoryDriver): {registry: CoreRegistry; states: string[]} {
  const states: string[] = []
  return {
    registry: new CoreRegistry(driver, withDefaults({retry: {attempts: 1, initialDelayMs: 1, maxDelayMs: 1}})),
    states,
  }
}

const input = {service: 'web', id: 'w1', address: '127.0.0.1', port: 8080}

describe('the registration lifecycle', () => {
  it('reports one lost and one restored across an outage, and re-creates what went missing meanwhile', async () => {
    const driver = new MemoryDriver()
    const {registry, states} = open(driver)
    const handle = await registry.register(input, {
      ttlMs: 1000,
      refreshMs: 50,
      onStateChange: (state) => states.push(state),
    })
    driver.unreachable = true
    await sleep(400)
    driver.records.clear()
    driver.unreachable = false
    const deadline = Date.now() + 2000
    while (!driver.records.has('w1') && Date.now() < deadline) await sleep(10)
    await sleep(200)
    expect(states).toEqual(['lost', 'restored'])
    expect(driver.writes).toBe(2)
    await handle.close()
    expect(driver.records.size).toBe(0)
  })

  it('checks at once on a driver event instead of waiting for the next refresh', async () => {
    const driver = new MemoryDriver()
    const {registry, states} = open(driver)
    await registry.register(input, {ttlMs: 60_000, onStateChange: (state) => states.push(state)})
    driver.records.clear()
    driver.emit({type: 'session-lost', detail: 'expired'})
    const deadline = Date.now() + 1000
    while (!driver.records.has('w1') && Date.now() < deadline) await sleep(5)
    expect(driver.records.has('w1')).toBe(true)
    expect(states).toEqual(['lost', 'restored'])
    await registry.close()
  })

  it('refuses a TTL below the floor naming it, and a refresh period where the backend has no use for one', async () => {
    const {registry} = open(new MemoryDriver({defaultTtlMs: 10_000, minTtlMs: 2000, refreshApplies: false}))
    await expect(registry.register(input, {ttlMs: 1500})).rejects.toThrow("a TTL of 1.5s is below etcd's floor of 2s")
    await expect(registry.register(input, {ttlMs: 999})).rejects.toMatchObject({hint: 'use --ttl 2s or more'})
    await expect(registry.register(input, {ttlMs: 9000, refreshMs: 3000})).rejects.toThrow(
      /--ttl-refresh does not apply to etcd/,
    )
    const floor = open(new MemoryDriver({defaultTtlMs: 10_000, minTtlMs: 0, refreshApplies: true})).registry
    await expect(floor.register(input, {ttlMs: 1})).rejects.toThrow(/floor of 1s/)
    await expect(floor.register(input, {ttlMs: 3000, refreshMs: 3000})).rejects.toThrow(/is not below the TTL/)
  })
})

/** The memory backend with a bulk read, counting how the lifecycle reads. */
class BulkDriver extends MemoryDriver {
  reads = 0
  bulkReads = 0
  bulkKeys = 0

  override async read(service: string, id: string): Promise<ReadResult | undefined> {
    this.reads++
    return super.read(service, id)
  }

  async readMany(keys: ReadonlyArray<{service: string; id: string}>): Promise<Map<string, ReadResult>> {
    this.bulkReads++
    this.bulkKeys += keys.length
    const found = new Map<string, ReadResult>()
    for (const {service, id} of keys) {
      const record = this.records.get(id)
      if (record) found.set(instanceKey({service, id}), {instance: record.instance, owner: record.owner})
    }

    return found
  }
}

describe('the presence scheduler', () => {
  it('checks every registration of a registry with one readMany a period, and one per driver event', async () => {
    const driver = new BulkDriver()
    const {registry} = open(driver)
    const handles = []
    for (let i = 0; i < 500; i++) {
      handles.push(await registry.register({...input, id: `w${i}`, port: 9000 + i}, {ttlMs: 3000, refreshMs: 200}))
    }

    // counted from here: on a busy machine, periods pass while the 500 registrations are still being made
    const claims = driver.reads
    const registered = driver.bulkReads
    driver.records.delete('w7')
    await sleep(500)
    // two or three periods: never one read per registration
    expect(driver.bulkReads - registered).toBeGreaterThanOrEqual(1)
    expect(driver.bulkReads - registered).toBeLessThanOrEqual(4)
    expect(driver.reads).toBe(claims)
    expect(driver.records.has('w7')).toBe(true)

    const before = driver.bulkReads
    const keys = driver.bulkKeys
    driver.emit({type: 'reconnected', detail: 'test'})
    await sleep(50)
    expect(driver.bulkReads).toBe(before + 1)
    // the pass takes (nearly) everyone: a registration whose re-creation finished late may fall to the next
    expect(driver.bulkKeys - keys).toBeGreaterThan(490)
    expect(driver.bulkKeys - keys).toBeLessThanOrEqual(500)
    for (const handle of handles) await handle.close()
    await registry.close()
  })
})
