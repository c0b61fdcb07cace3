import {Histogram, type Registry} from 'prom-client'

/** Proxy latencies: sub-millisecond on loopback, seconds for slow upstreams. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

/**
 * One service's latencies, counted in plain numbers on the request path: prom-client's observe() validates and
 * hashes the labels on every call (about 50x the cost of this).
 */
export class LatencyCounts {
  /** Observations per bucket (not cumulative); the last is above every bound (+Inf only). */
  readonly buckets: number[] = Array.from({length: LATENCY_BUCKETS.length + 1}, zero)
  sum = 0
  count = 0

  constructor(readonly service: string) {}

  observe(seconds: number): void {
    let i = 0
    while (i < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[i]!) i++
    this.buckets[i]!++
    this.sum += seconds
    this.count++
  }
}

function zero(): number {
  return 0
}

type Values = Awaited<ReturnType<Histogram<'service'>['get']>>['values']

/**
 * A prom-client histogram (same name, help, type and exposition) whose values are read, at each scrape, from the
 * services' LatencyCounts instead of being observed one by one.
 */
export class LatencyHistogram extends Histogram<'service'> {
  private readonly counts: () => Iterable<LatencyCounts>
  private readonly metricName: string
  private readonly metricHelp: string

  constructor(opts: {name: string; help: string; registers: Registry[]; counts: () => Iterable<LatencyCounts>}) {
    super({
      name: opts.name,
      help: opts.help,
      labelNames: ['service'],
      buckets: LATENCY_BUCKETS,
      registers: opts.registers,
    })
    this.counts = opts.counts
    this.metricName = opts.name
    this.metricHelp = opts.help
  }

  /** What prom-client's registry renders (it calls this, not get(), for the text exposition; get() goes through it). */
  async getForPromString(): Promise<{name: string; help: string; type: string; values: Values; aggregator: string}> {
    const name = this.metricName
    const values: Values = []
    const bucket = `${name}_bucket`
    for (const c of this.counts()) {
      if (c.count === 0) continue
      let cumulative = 0
      for (const [i, bound] of LATENCY_BUCKETS.entries()) {
        cumulative += c.buckets[i]!
        values.push(entry(labelsOf(bound, c.service), cumulative, bucket))
      }

      values.push(
        entry(labelsOf('+Inf', c.service), c.count, bucket),
        entry({service: c.service}, c.sum, `${name}_sum`),
        entry({service: c.service}, c.count, `${name}_count`),
      )
    }

    return {name, help: this.metricHelp, type: 'histogram', values, aggregator: 'sum'}
  }
}

/** One exposition line's value; `sharedLabels` empty, as prom-client's get() expects of what this returns. */
function entry(labels: Partial<Record<'service', string>>, value: number, metricName: string): Values[number] {
  const line = {labels, value, metricName, sharedLabels: {}}
  return line
}

/** `le` first, as prom-client writes a histogram's bucket lines. */
function labelsOf(le: number | string, service: string): Partial<Record<'service', string>> {
  const labels: Partial<Record<'le' | 'service', number | string>> = {le, service}
  return labels as Partial<Record<'service', string>>
}
