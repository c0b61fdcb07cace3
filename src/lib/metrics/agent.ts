import type {AgentSource} from '../docker/source.js'
import type {AgentEvent} from '../docker/types.js'
import {Registry} from './prometheus.js'
import {type MetricsServer, serveMetrics} from './server.js'

export {parseHostPort} from './server.js'

/** Docker events reach the agent within milliseconds; the tail shows a daemon under load. */
const LAG_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
/** A resync talks to Docker and the backend for every container: tens of ms to a minute. */
const RESYNC_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

export interface AgentMetrics {
  registry: Registry
  /** The exposition text; reads the agent's snapshot for the gauges. */
  render(): string
  /** Stops following the agent's events. */
  stop(): void
}

/** Follows `agent`'s events into counters and histograms; gauges are read from its snapshot at each scrape. */
export function createAgentMetrics(agent: AgentSource): AgentMetrics {
  const registry = new Registry()
  const registrations = registry.counter({
    name: 'svc_agent_registrations_total',
    help: 'Instances the agent registered (resyncs included).',
    labelNames: ['service'],
  })
  const deregistrations = registry.counter({
    name: 'svc_agent_deregistrations_total',
    help: 'Instances the agent removed, by reason.',
    labelNames: ['service', 'reason'],
  })
  const errors = registry.counter({name: 'svc_agent_errors_total', help: 'Errors the agent reported.'})
  const instances = registry.gauge({
    name: 'svc_agent_instances',
    help: 'Instances the agent keeps registered, by service.',
    labelNames: ['service'],
  })
  const containers = registry.gauge({name: 'svc_agent_containers', help: 'Containers the agent follows.'})
  const docker = registry.gauge({
    name: 'svc_agent_docker_connected',
    help: '1 while the Docker event stream is connected, 0 while reconnecting.',
  })
  const backend = registry.gauge({
    name: 'svc_agent_backend_connected',
    help: '1 while the registry backend answers, 0 while it is retrying or lost.',
  })
  const lag = registry.histogram({
    name: 'svc_agent_event_lag_seconds',
    help: 'Delay between a Docker event and the agent handling it.',
    buckets: LAG_BUCKETS,
  })
  const resync = registry.histogram({
    name: 'svc_agent_resync_duration_seconds',
    help: 'Duration of full resyncs.',
    buckets: RESYNC_BUCKETS,
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

  registry.collect(() => {
    const snap = agent.snapshot()
    containers.set(snap.containers.length)
    docker.set(snap.docker === 'connected' ? 1 : 0)
    const counts = new Map<string, number>()
    for (const c of snap.containers) {
      for (const s of c.services) counts.set(s.service, (counts.get(s.service) ?? 0) + 1)
    }

    // services that are gone disappear from the output rather than stay at 0
    instances.reset()
    for (const [service, n] of counts) instances.set({service}, n)
  })

  return {registry, render: () => registry.metrics(), stop}
}

/** `svc agent --metrics`: serves the agent's metrics on host:port until closed. */
export async function serveAgentMetrics(agent: AgentSource, host: string, port: number): Promise<MetricsServer> {
  const metrics = createAgentMetrics(agent)
  let server: MetricsServer
  try {
    server = await serveMetrics(() => metrics.render(), host, port)
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
