import {sleep} from '../cluster/process.js'
import type {Registry, ServiceInstance} from '../registry/types.js'

const healthy = (i: ServiceInstance): boolean => i.health === 'passing' || i.health === 'warning'
const keyOf = (i: ServiceInstance): string => `${i.service}/${i.id}`

/** Every instance registered now, by service/id, and whether it resolves (is healthy). */
export async function snapshotRegistrations(registry: Registry): Promise<Map<string, boolean>> {
  const snapshot = new Map<string, boolean>()
  for (const service of await registry.listServices()) {
    for (const instance of await registry.listInstances(service.name)) snapshot.set(keyOf(instance), healthy(instance))
  }

  return snapshot
}

export interface RegistrationCheck {
  /** Instances registered before the drill. */
  before: number
  /** Of those, the ones that resolve after it as they did before (present, and healthy if they were). */
  resolving: number
  /** service/id of the others. */
  missing: string[]
}

/** Waits (bounded) until every instance of `before` resolves again as it did; reports those that do not. */
export async function checkRegistrations(
  registry: Registry,
  before: ReadonlyMap<string, boolean>,
  timeoutMs: number,
): Promise<RegistrationCheck> {
  const deadline = Date.now() + timeoutMs
  let missing = [...before.keys()]
  while (missing.length > 0) {
    try {
      const now = await snapshotRegistrations(registry)
      missing = [...before.entries()]
        .filter(([key, wasHealthy]) => !now.has(key) || (wasHealthy && !now.get(key)))
        .map(([key]) => key)
    } catch {
      // the backend is still recovering: ask again
    }

    if (missing.length === 0 || Date.now() >= deadline) break
    await sleep(200)
  }

  return {before: before.size, resolving: before.size - missing.length, missing}
}
