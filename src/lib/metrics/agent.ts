import type {AgentSource} from '../docker/source.js'
import type {AgentEvent} from '../docker/types.js'
import {Counter, Gauge, Histogram, type Registry} from 'prom-client'

import {createRegistry} from './registry.js'
import {type MetricsServer, serveMetrics} from './server.js'

export {parseHostPort} from './server.js'

/** Docker events reach the agent within milliseconds; the tail shows a daemon under load. */
const LAG_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
/** A resync talks to Docker and the backend for every container: tens of ms to a minute. */
const RESYNC_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

export interface AgentMetrics {
  registry: Registry
  /** The exposition text; reads the agent's snapshot for the gauges. */
  render(): Promise<string>
  /** Stops following the agent's events. */
  stop(): void
}

/** Follows `agent`'s events into counters and histograms; gauges are read from its snapshot at each scrape. */
export function createAgentMetrics(agent: AgentSource): AgentMetrics {
  const registry = createRegistry()
  const registers = [registry]
  const registrations = new Counter({
    name: 'svc_agent_registrations_total',
    help: 'Instances the agent registered (resyncs included).',
    labelNames: ['service'] as const,
    registers,
  })
  const deregistrations = new Counter({
    name: 'svc_agent_deregistrations_total',
    help: 'Instances the agent removed, by reason.',
    labelNames: ['service', 'reason'] as const,
    registers,
  })
  const errors = new Counter({name: 'svc_agent_errors_total', help: 'Errors the agent reported.', registers})
  for (const gauge of snapshotGauges(agent)) registry.registerMetric(gauge)
  const backend = new Gauge({
    name: 'svc_agent_backend_connected',
    help: '1 while the registry backend answers, 0 while it is retrying or lost.',
    registers,
  })
  const lag = new Histogram({
    name: 'svc_agent_event_lag_seconds',
    help: 'Delay between a Docker event and the agent handling it.',
    buckets: LAG_BUCKETS,
    registers,
  })
  const resync = new Histogram({
    name: 'svc_agent_resync_duration_seconds',
    help: 'Duration of full resyncs.',
    buckets: RESYNC_BUCKETS,
    registers,
  })

  const onEvent = (e: AgentEvent): void => {
    switch (e.type) {
      case 'registered': {
        registrations.inc({service: e.instance.service})
        break
      }

      case 'deregistered': {
        deregistrations.inc({service: e.service, reason: e.reason})
        break
      }

      case 'error': {
        errors.inc()
        break
      }

      case 'backend': {
        backend.set(e.state === 'connected' || e.state === 'restored' ? 1 : 0)
        break
      }

      case 'event-lag': {
        lag.observe(e.ms / 1000)
        break
      }

      case 'resync': {
        resync.observe(e.durationMs / 1000)
        break
      }

      case 'docker':
      case 'health': {
        // read from the snapshot at scrape time
        break
      }
    }
  }

  // the backend state is only known from events: start from the last one the agent kept
  const lastBackend = agent
    .snapshot()
    .events.findLast((e): e is Extract<AgentEvent, {type: 'backend'}> => e.type === 'backend')
  if (lastBackend) onEvent(lastBackend)
  const stop = agent.on(onEvent)

  return {registry, render: () => registry.metrics(), stop}
}

/** The gauges read from the agent's snapshot at each scrape rather than counted from events. */
function snapshotGauges(agent: AgentSource): Gauge[] {
  return [
    new Gauge({
      name: 'svc_agent_instances',
      help: 'Instances the agent keeps registered, by service.',
      labelNames: ['service'] as const,
      registers: [],
      collect() {
        const counts = new Map<string, number>()
        for (const c of agent.snapshot().containers) {
          for (const s of c.services) counts.set(s.service, (counts.get(s.service) ?? 0) + 1)
        }

        // services that are gone disappear from the output rather than stay at 0
        this.reset()
        for (const [service, n] of counts) this.set({service}, n)
      },
    }),
    new Gauge({
      name: 'svc_agent_containers',
      help: 'Containers the agent follows.',
      registers: [],
      collect() {
        this.set(agent.snapshot().containers.length)
      },
    }),
    new Gauge({
      name: 'svc_agent_docker_connected',
      help: '1 while the Docker event stream is connected, 0 while reconnecting.',
      registers: [],
      collect() {
        this.set(agent.snapshot().docker === 'connected' ? 1 : 0)
      },
    }),
  ]
}

/** `svc agent --metrics`: serves the agent's metrics on host:port until closed. */
export async function serveAgentMetrics(agent: AgentSource, host: string, port: number): Promise<MetricsServer> {
  const metrics = createAgentMetrics(agent)
  let server: MetricsServer
  try {
    server = await serveMetrics(metrics.registry, host, port)
  } catch (error) {
    metrics.stop()
    throw error
  }

  return {
    ...server,
    async close() {
      metrics.stop()
      await server.close()
    },
  }
}
