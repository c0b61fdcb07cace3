/* eslint-disable no-bitwise -- hashing is bit arithmetic */
/** Points per unit of weight: enough for an even spread over a handful of instances, small enough to rebuild often. */
export const POINTS_PER_WEIGHT = 100
const MAX_POINTS_PER_TARGET = 2000

/** FNV-1a over the UTF-16 code units, then murmur3's finalizer so near-equal keys land far apart. */
export function hash32(text: string, seed = 0x81_1c_9d_c5): number {
  let h = seed
  for (let i = 0; i < text.length; i++) {
    h ^= text.codePointAt(i)!
    h = Math.imul(h, 0x01_00_01_93)
  }

  h ^= h >>> 16
  h = Math.imul(h, 0x85_eb_ca_6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2_b2_ae_35)
  h ^= h >>> 16
  return h >>> 0
}

/**
 * A consistent-hashing ring: each target owns points in proportion to its weight, and a key goes to the owner of
 * the first point at or after the key's hash. Removing one target moves only the keys it owned.
 */
export class HashRing<T> {
  private readonly points: Uint32Array
  private readonly owners: Uint32Array

  constructor(
    readonly targets: readonly T[],
    idOf: (target: T) => string,
    weightOf: (target: T) => number,
  ) {
    const entries: Array<[number, number]> = []
    for (const [index, target] of targets.entries()) {
      const id = idOf(target)
      const count = Math.min(MAX_POINTS_PER_TARGET, Math.max(1, Math.round(POINTS_PER_WEIGHT * weightOf(target))))
      for (let replica = 0; replica < count; replica++) entries.push([hash32(`${id}#${replica}`), index])
    }

    // ties broken by index so the ring does not depend on the order of equal hashes
    entries.sort((a, b) => a[0] - b[0] || a[1] - b[1])
    this.points = Uint32Array.from(entries, (e) => e[0])
    this.owners = Uint32Array.from(entries, (e) => e[1])
  }

  /** The owner of `key`, or undefined when the ring is empty. */
  get(key: string): T | undefined {
    const slot = this.slot(hash32(key))
    return slot < 0 ? undefined : this.targets[this.owners[slot]!]
  }

  /** The next owner clockwise from `key`'s that is not `exclude` (for a retry), or undefined. */
  next(key: string, exclude: T): T | undefined {
    const start = this.slot(hash32(key))
    if (start < 0) return undefined
    for (let step = 0; step < this.points.length; step++) {
      const target = this.targets[this.owners[(start + step) % this.points.length]!]
      if (target !== exclude) return target
    }

    return undefined
  }

  private slot(h: number): number {
    const {points} = this
    if (points.length === 0) return -1
    let lo = 0
    let hi = points.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (points[mid]! < h) lo = mid + 1
      else hi = mid
    }

    return lo === points.length ? 0 : lo
  }
}
