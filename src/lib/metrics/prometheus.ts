import {BugError} from '../errors.js'

/** Label values by label name; numbers are written as their decimal text. */
export type LabelValues<L extends string> = Readonly<Record<L, number | string>>

/** A metric's call arguments: `T` alone when it has no labels, else the label values first. */
export type WithLabels<L extends string, T extends unknown[]> = [L] extends [never] ? T : [labels: LabelValues<L>, ...T]

export interface MetricOptions<L extends string> {
  name: string
  help: string
  labelNames?: readonly L[]
}

export interface HistogramOptions<L extends string> extends MetricOptions<L> {
  /** Upper bounds, ascending; +Inf is implied. */
  buckets?: readonly number[]
}

/** Prometheus client defaults, in seconds: 5 ms to 10 s. */
export const DEFAULT_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** Media type of the text exposition format this module writes. */
export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

const METRIC_NAME = /^[a-zA-Z_:][\w:]*$/
const LABEL_NAME = /^[a-zA-Z_]\w*$/
// a label-value lookup level: the next level's map, or the child at the last label
type Node = Map<string, unknown>

interface Collectable {
  readonly name: string
  write(out: string[]): void
}

/** One set of label values of a counter; keep it to count without a lookup. */
export class CounterChild {
  value = 0

  /** @param labelText the rendered `a="x",b="y"` pairs, or '' */
  constructor(readonly labelText: string) {}

  inc(value = 1): void {
    if (!(value >= 0)) throw new BugError(`counter increment must be a non-negative number, got ${value}`)
    this.value += value
  }
}

/** One set of label values of a gauge. */
export class GaugeChild {
  value = 0

  constructor(readonly labelText: string) {}

  set(value: number): void {
    this.value = value
  }

  inc(value = 1): void {
    this.value += value
  }

  dec(value = 1): void {
    this.value -= value
  }
}

/** One set of label values of a histogram; `counts[i]` holds observations in bucket i only (not cumulative). */
export class HistogramChild {
  readonly counts: Float64Array
  sum = 0
  count = 0

  constructor(
    readonly labelText: string,
    private readonly bounds: readonly number[],
  ) {
    // the last slot is +Inf
    this.counts = new Float64Array(bounds.length + 1)
  }

  observe(value: number): void {
    const {bounds} = this
    let i = 0
    while (i < bounds.length && value > bounds[i]!) i++
    this.counts[i]!++
    this.sum += value
    this.count++
  }
}

abstract class Metric<L extends string, C> implements Collectable {
  abstract readonly type: 'counter' | 'gauge' | 'histogram'
  readonly help: string
  readonly labelNames: readonly L[]
  readonly name: string
  // children in creation order, for output
  protected readonly children = new Set<C>()
  // lookup: one level of maps per label, keyed by its value; no key strings are built
  private readonly tree: Node = new Map()
  // the child of a metric without labels, created up front so it is exported as 0 before first use
  protected unlabelled: C | undefined

  constructor(
    opts: MetricOptions<L>,
    private readonly create: (labelText: string) => C,
    reserved: readonly string[] = [],
  ) {
    if (!METRIC_NAME.test(opts.name)) throw new BugError(`invalid metric name "${opts.name}"`)
    this.name = opts.name
    this.help = opts.help
    this.labelNames = opts.labelNames ?? []
    for (const label of this.labelNames) {
      if (!LABEL_NAME.test(label) || label.startsWith('__') || reserved.includes(label)) {
        throw new BugError(`invalid label name "${label}" on metric ${opts.name}`)
      }
    }

    if (new Set(this.labelNames).size !== this.labelNames.length) {
      throw new BugError(`duplicate label name on metric ${opts.name}`)
    }

    this.reset()
  }

  /** The child for these label values, created on first use; keep it on hot paths to skip the lookup. */
  labels(values: LabelValues<L>): C {
    const names = this.labelNames
    if (names.length === 0) return this.unlabelled!
    let node = this.tree
    const last = names.length - 1
    for (let i = 0; i < last; i++) {
      const value = labelValue(values, names[i]!, this.name)
      let next = node.get(value) as Node | undefined
      if (next === undefined) {
        next = new Map()
        node.set(value, next)
      }

      node = next
    }

    const value = labelValue(values, names[last]!, this.name)
    let child = node.get(value) as C | undefined
    if (child === undefined) {
      child = this.create(this.labelNames.map((l) => `${l}="${escapeLabelValue(String(values[l]))}"`).join(','))
      node.set(value, child)
      this.children.add(child)
    }

    return child
  }

  /** Removes one set of label values from the output. */
  remove(values: LabelValues<L>): void {
    const found = this.find(values)
    if (found === undefined) return
    found.node.delete(found.value)
    this.children.delete(found.child)
  }

  /** Drops every set of label values; a metric without labels restarts at zero. */
  reset(): void {
    this.children.clear()
    this.tree.clear()
    if (this.labelNames.length === 0) {
      this.unlabelled = this.create('')
      this.children.add(this.unlabelled)
    }
  }

  write(out: string[]): void {
    out.push(`# HELP ${this.name} ${escapeHelp(this.help)}\n`, `# TYPE ${this.name} ${this.type}\n`)
    for (const child of this.children) this.writeChild(out, child)
  }

  protected abstract writeChild(out: string[], child: C): void

  /** The value of one set of label values without creating it: 0 when it was never used. */
  protected peek(args: unknown[]): C | undefined {
    return this.unlabelled ?? this.find(args[0] as LabelValues<L>)?.child
  }

  /** The child a call's arguments select: the label values come first when the metric has labels. */
  protected pick(args: unknown[]): C {
    return this.unlabelled ?? this.labels(args[0] as LabelValues<L>)
  }

  /** The call's argument after the label values, if any. */
  protected arg(args: unknown[]): number | undefined {
    return (this.unlabelled === undefined ? args[1] : args[0]) as number | undefined
  }

  private find(values: LabelValues<L>): undefined | {child: C; node: Node; value: string} {
    const names = this.labelNames
    let node: Node | undefined = this.tree
    for (let i = 0; i < names.length - 1 && node; i++) {
      node = node.get(labelValue(values, names[i]!, this.name)) as Node | undefined
    }

    const last = names.at(-1)
    if (node === undefined || last === undefined) return undefined
    const value = labelValue(values, last, this.name)
    const child = node.get(value) as C | undefined
    return child === undefined ? undefined : {child, node, value}
  }
}

/** A value that only goes up (requests, registrations, errors). */
export class Counter<L extends string = never> extends Metric<L, CounterChild> {
  readonly type = 'counter'

  constructor(opts: MetricOptions<L>) {
    super(opts, (text) => new CounterChild(text))
  }

  inc(...args: WithLabels<L, [value?: number]>): void {
    this.pick(args).inc(this.arg(args))
  }

  get(...args: WithLabels<L, []>): number {
    return this.peek(args)?.value ?? 0
  }

  protected writeChild(out: string[], child: CounterChild): void {
    out.push(sample(this.name, child.labelText, child.value))
  }
}

/** A value that goes up and down (instances, connections, up/down as 1/0). */
export class Gauge<L extends string = never> extends Metric<L, GaugeChild> {
  readonly type = 'gauge'

  constructor(opts: MetricOptions<L>) {
    super(opts, (text) => new GaugeChild(text))
  }

  set(...args: WithLabels<L, [value: number]>): void {
    this.pick(args).set(this.arg(args)!)
  }

  inc(...args: WithLabels<L, [value?: number]>): void {
    this.pick(args).inc(this.arg(args))
  }

  dec(...args: WithLabels<L, [value?: number]>): void {
    this.pick(args).dec(this.arg(args))
  }

  get(...args: WithLabels<L, []>): number {
    return this.peek(args)?.value ?? 0
  }

  protected writeChild(out: string[], child: GaugeChild): void {
    out.push(sample(this.name, child.labelText, child.value))
  }
}

/** Observations counted into buckets (latencies, durations, lags), with their sum and count. */
export class Histogram<L extends string = never> extends Metric<L, HistogramChild> {
  readonly type = 'histogram'
  readonly buckets: readonly number[]
  // `le="…"` pairs rendered once, the last for +Inf
  private readonly leText: string[]

  constructor(opts: HistogramOptions<L>) {
    const buckets = (opts.buckets ?? DEFAULT_BUCKETS).filter((b) => b !== Number.POSITIVE_INFINITY)
    for (let i = 1; i < buckets.length; i++) {
      if (!(buckets[i]! > buckets[i - 1]!)) throw new BugError(`buckets of ${opts.name} must be strictly ascending`)
    }

    super(opts, (text) => new HistogramChild(text, buckets), ['le'])
    this.buckets = buckets
    this.leText = [...buckets.map((b) => `le="${formatNumber(b)}"`), 'le="+Inf"']
  }

  observe(...args: WithLabels<L, [value: number]>): void {
    this.pick(args).observe(this.arg(args)!)
  }

  protected writeChild(out: string[], child: HistogramChild): void {
    const prefix = child.labelText === '' ? '' : `${child.labelText},`
    let cumulative = 0
    for (const [i, le] of this.leText.entries()) {
      cumulative += child.counts[i]!
      out.push(`${this.name}_bucket{${prefix}${le}} ${formatNumber(cumulative)}\n`)
    }

    out.push(
      sample(`${this.name}_sum`, child.labelText, child.sum),
      sample(`${this.name}_count`, child.labelText, child.count),
    )
  }
}

/** A set of metrics rendered together; `collect` hooks refresh values that are read, not counted, at scrape time. */
export class Registry {
  private readonly collectors: Array<() => void> = []
  private readonly byName = new Map<string, Collectable>()

  counter<L extends string = never>(opts: MetricOptions<L>): Counter<L> {
    return this.add(new Counter<L>(opts))
  }

  gauge<L extends string = never>(opts: MetricOptions<L>): Gauge<L> {
    return this.add(new Gauge<L>(opts))
  }

  histogram<L extends string = never>(opts: HistogramOptions<L>): Histogram<L> {
    return this.add(new Histogram<L>(opts))
  }

  /** Runs `fn` before each render, e.g. to set gauges from a snapshot. */
  collect(fn: () => void): void {
    this.collectors.push(fn)
  }

  /** All metrics in text exposition format 0.0.4, in registration order. */
  metrics(): string {
    for (const fn of this.collectors) fn()
    const out: string[] = []
    for (const metric of this.byName.values()) metric.write(out)
    return out.join('')
  }

  private add<M extends Collectable>(metric: M): M {
    if (this.byName.has(metric.name)) throw new BugError(`metric ${metric.name} is registered twice`)
    this.byName.set(metric.name, metric)
    return metric
  }
}

function labelValue(values: Readonly<Record<string, number | string>>, name: string, metric: string): string {
  const value = values[name]
  if (value === undefined) throw new BugError(`metric ${metric} needs label "${name}"`)
  return typeof value === 'string' ? value : String(value)
}

function sample(name: string, labelText: string, value: number): string {
  return labelText === '' ? `${name} ${formatNumber(value)}\n` : `${name}{${labelText}} ${formatNumber(value)}\n`
}

/** A sample value as Prometheus writes it: +Inf, -Inf and NaN spelled out. */
export function formatNumber(value: number): string {
  if (Number.isNaN(value)) return 'NaN'
  if (value === Number.POSITIVE_INFINITY) return '+Inf'
  if (value === Number.NEGATIVE_INFINITY) return '-Inf'
  return String(value)
}

/** Escapes backslash, double quote and line feed, as the format requires in label values. */
export function escapeLabelValue(value: string): string {
  return value
    .replaceAll('\\', String.raw`\\`)
    .replaceAll('"', String.raw`\"`)
    .replaceAll('\n', String.raw`\n`)
}

function escapeHelp(help: string): string {
  return help.replaceAll('\\', String.raw`\\`).replaceAll('\n', String.raw`\n`)
}
