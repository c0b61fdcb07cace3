import {UserError} from '../errors.js'
import {HashRing} from './hash-ring.js'

export const BALANCE_STRATEGIES = ['round-robin', 'random', 'least-conn', 'hash'] as const
export type BalanceStrategy = (typeof BALANCE_STRATEGIES)[number]

/** What a long-lived balancer picks from: an upstream with its weight and its requests in flight. */
export interface Target {
  readonly id: string
  readonly weight: number
  readonly inflight: number
}

/** Picks one target per request; built once per change of the candidate set, so `pick` allocates nothing. */
export interface Balancer<T extends Target> {
  readonly targets: readonly T[]
  /** One target, or undefined when there is none; `key` is the hash key (hash strategy only). */
  pick(key: string | undefined): T | undefined
  /** A target other than `exclude` (for a retry), or undefined when there is no other. */
  pickOther(exclude: T, key: string | undefined): T | undefined
  /** A target none of the `tried` ones (a second retry), or undefined when every target was tried. */
  pickUntried(tried: ReadonlySet<T>, key: string | undefined): T | undefined
}

export function parseBalanceStrategy(value: string): BalanceStrategy {
  const found = BALANCE_STRATEGIES.find((s) => s === value)
  if (!found) {
    throw new UserError(`unknown balancing strategy "${value}"`, `use one of ${BALANCE_STRATEGIES.join(', ')}`)
  }

  return found
}

/**
 * A balancer over `targets`. Weight 0 keeps a target out while any other has weight; when every weight is 0
 * they count as equal.
 */
export function createBalancer<T extends Target>(
  strategy: BalanceStrategy,
  targets: readonly T[],
  random: () => number = Math.random,
): Balancer<T> {
  const weighted = targets.filter((t) => t.weight > 0)
  const list = weighted.length > 0 ? weighted : targets
  const weights = weighted.length > 0 ? list.map((t) => t.weight) : list.map(() => 1)
  switch (strategy) {
    case 'round-robin': {
      return weights.every((w) => w === weights[0]) ? new RoundRobin(list) : new WeightedRoundRobin(list, weights)
    }

    case 'random': {
      return new WeightedRandom(list, weights, random)
    }

    case 'least-conn': {
      return new LeastConn(list, weights, random)
    }

    case 'hash': {
      return new ConsistentHash(list, weights)
    }
  }
}

abstract class Base<T extends Target> implements Balancer<T> {
  constructor(readonly targets: readonly T[]) {}

  abstract pick(key: string | undefined): T | undefined

  pickUntried(tried: ReadonlySet<T>, key: string | undefined): T | undefined {
    for (let i = 0; i < 3; i++) {
      const t = this.pick(key)
      if (t !== undefined && !tried.has(t)) return t
    }

    return this.targets.find((t) => !tried.has(t))
  }

  pickOther(exclude: T, key: string | undefined): T | undefined {
    const {targets} = this
    if (targets.length === 0 || (targets.length === 1 && targets[0] === exclude)) return undefined
    for (let i = 0; i < 3; i++) {
      const t = this.pick(key)
      if (t !== exclude) return t
    }

    return targets.find((t) => t !== exclude)
  }
}

/** Equal weights: a rotating index. */
class RoundRobin<T extends Target> extends Base<T> {
  private next = 0

  pick(): T | undefined {
    const {targets} = this
    if (targets.length === 0) return undefined
    if (this.next >= targets.length) this.next = 0
    return targets[this.next++]
  }
}

/** nginx's smooth weighted round-robin: weight 3 vs 1 gives a a b a, never a a a b. */
class WeightedRoundRobin<T extends Target> extends Base<T> {
  private readonly current: Float64Array
  private readonly total: number

  constructor(
    targets: readonly T[],
    private readonly weights: readonly number[],
  ) {
    super(targets)
    this.current = new Float64Array(targets.length)
    this.total = weights.reduce((a, b) => a + b, 0)
  }

  pick(): T | undefined {
    const {current, weights} = this
    let best = -1
    for (let i = 0; i < current.length; i++) {
      current[i]! += weights[i]!
      if (best < 0 || current[i]! > current[best]!) best = i
    }

    if (best < 0) return undefined
    current[best]! -= this.total
    return this.targets[best]
  }
}

/** Random in proportion to weight: a binary search over cumulative weights. */
class WeightedRandom<T extends Target> extends Base<T> {
  private readonly cumulative: Float64Array

  constructor(
    targets: readonly T[],
    weights: readonly number[],
    private readonly random: () => number,
  ) {
    super(targets)
    this.cumulative = cumulativeOf(weights)
  }

  pick(): T | undefined {
    const index = weightedIndex(this.cumulative, this.random())
    return index < 0 ? undefined : this.targets[index]
  }
}

/** Power of two choices: two weighted-random candidates, the one with fewer requests in flight per weight wins. */
class LeastConn<T extends Target> extends Base<T> {
  private readonly cumulative: Float64Array

  constructor(
    targets: readonly T[],
    private readonly weights: readonly number[],
    private readonly random: () => number,
  ) {
    super(targets)
    this.cumulative = cumulativeOf(weights)
  }

  pick(): T | undefined {
    const {targets} = this
    if (targets.length < 2) return targets[0]
    const a = weightedIndex(this.cumulative, this.random())
    let b = weightedIndex(this.cumulative, this.random())
    if (b === a) b = (a + 1 + Math.floor(this.random() * (targets.length - 1))) % targets.length
    const ta = targets[a]!
    const tb = targets[b]!
    return tb.inflight / this.weights[b]! < ta.inflight / this.weights[a]! ? tb : ta
  }
}

/** Consistent hashing on the request's key; a request without a key is spread round-robin. */
class ConsistentHash<T extends Target> extends Base<T> {
  private readonly ring: HashRing<T>
  private readonly fallback: RoundRobin<T>

  constructor(targets: readonly T[], weights: readonly number[]) {
    super(targets)
    const weightOf = new Map(targets.map((t, i) => [t, weights[i]!]))
    this.ring = new HashRing(
      targets,
      (t) => t.id,
      (t) => weightOf.get(t)!,
    )
    this.fallback = new RoundRobin(targets)
  }

  pick(key: string | undefined): T | undefined {
    return key === undefined ? this.fallback.pick() : this.ring.get(key)
  }

  override pickOther(exclude: T, key: string | undefined): T | undefined {
    return key === undefined ? super.pickOther(exclude, key) : this.ring.next(key, exclude)
  }
}

function cumulativeOf(weights: readonly number[]): Float64Array {
  const out = new Float64Array(weights.length)
  let sum = 0
  for (const [i, w] of weights.entries()) {
    sum += w
    out[i] = sum
  }

  return out
}

function weightedIndex(cumulative: Float64Array, r: number): number {
  const n = cumulative.length
  if (n === 0) return -1
  const point = r * cumulative[n - 1]!
  let lo = 0
  let hi = n - 1
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2)
    if (cumulative[mid]! <= point) lo = mid + 1
    else hi = mid
  }

  return lo
}
