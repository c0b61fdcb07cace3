import {mkdir, readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'

import {UserError} from '../errors.js'
import type {ServiceInstance} from '../registry/types.js'

export const PICK_STRATEGIES = ['random', 'round-robin', 'first'] as const
export type PickStrategy = (typeof PICK_STRATEGIES)[number]

export function parsePickStrategy(value: string): PickStrategy {
  const found = PICK_STRATEGIES.find((s) => s === value)
  if (!found) throw new UserError(`unknown pick strategy "${value}"`, `use one of ${PICK_STRATEGIES.join(', ')}`)
  return found
}

/** The `weight` meta value (default 1; 0 means never picked while others are there). */
export function instanceWeight(instance: ServiceInstance): number {
  const raw = instance.meta.weight
  if (raw === undefined) return 1
  const weight = Number(raw)
  return Number.isFinite(weight) && weight >= 0 ? weight : 1
}

export function pickWeightedRandom(instances: readonly ServiceInstance[], random = Math.random): ServiceInstance {
  const total = instances.reduce((sum, i) => sum + instanceWeight(i), 0)
  if (total <= 0) return instances[Math.floor(random() * instances.length)]!
  let point = random() * total
  for (const instance of instances) {
    point -= instanceWeight(instance)
    if (point < 0) return instance
  }

  return instances.at(-1)!
}

/**
 * Picks one instance. Round-robin across separate CLI runs keeps its position in a small state file,
 * so `svc resolve web --pick round-robin` in a shell loop rotates.
 */
export async function pickInstance(
  instances: readonly ServiceInstance[],
  strategy: PickStrategy,
  stateDir: string,
): Promise<ServiceInstance | undefined> {
  if (instances.length === 0) return undefined
  switch (strategy) {
    case 'first': {
      return instances[0]
    }

    case 'random': {
      return pickWeightedRandom(instances)
    }

    case 'round-robin': {
      const service = instances[0]!.service
      const file = path.join(stateDir, 'round-robin', service)
      const previous = Number.parseInt(await readFile(file, 'utf8').catch(() => '-1'), 10)
      const next = (Number.isNaN(previous) ? 0 : previous + 1) % instances.length
      await mkdir(path.dirname(file), {recursive: true, mode: 0o700})
      await writeFile(file, String(next), {mode: 0o600}).catch(() => {})
      return instances[next]
    }
  }
}
