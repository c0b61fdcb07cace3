import {collectDefaultMetrics, type Counter, type Gauge, Registry} from 'prom-client'

/** What the metrics server needs from a registry: the exposition text and its media type. */
export interface Exposition {
  readonly contentType: string
  metrics(): Promise<string>
}

/** Default collectors' gauges whose `_total` suffix is reserved for counters. */
const MISNAMED_DEFAULTS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
]

/** A registry of its own (never prom-client's global one) with the default process and Node.js collectors. */
export function createRegistry(): Registry {
  const registry = new Registry()
  collectDefaultMetrics({register: registry})
  // gauges named like counters: promtool's lint refuses them, and each is the sum of its labelled twin
  for (const name of MISNAMED_DEFAULTS) registry.removeSingleMetric(name)
  return registry
}

/** The value of one label set of a counter or gauge, 0 when it was never set (for reports and tests). */
export async function valueOf<T extends string>(
  metric: Counter<T> | Gauge<T>,
  labels: Partial<Record<T, number | string>>,
): Promise<number> {
  const {values} = await metric.get()
  const found = values.find((v) =>
    Object.entries(labels).every(([name, value]) => String(v.labels[name as T]) === String(value)),
  )
  return found?.value ?? 0
}
