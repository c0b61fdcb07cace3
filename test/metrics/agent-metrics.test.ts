import {request} from 'node:http'
import {describe, expect, it} from 'vitest'

import {createAgentMetrics, serveAgentMetrics} from '../../src/lib/metrics/agent.js'
import {container, FakeAgent, instance} from '../helpers/fake-agent.js'

/** The sample lines (no HELP/TYPE) of the exposition. */
function samples(text: string): string[] {
  return text.split('\n').filter((l) => l !== '' && !l.startsWith('#'))
}

describe('agent metrics', () => {
  it('counts registrations, deregistrations and errors from events', async () => {
    const agent = new FakeAgent()
    const metrics = createAgentMetrics(agent)
    const web = instance('web', 32_768)
    agent.emit({type: 'registered', instance: web, container: 'web-1'})
    agent.emit({type: 'registered', instance: instance('web', 32_769), container: 'web-2'})
    agent.emit({type: 'registered', instance: instance('redis', 6379), container: 'redis'})
    agent.emit({type: 'deregistered', service: 'web', id: web.id, container: 'web-1', reason: 'die'})
    agent.emit({type: 'deregistered', service: 'web', id: 'x', container: 'web-2', reason: 'cleanup'})
    agent.emit({type: 'error', message: 'boom'})
    agent.emit({type: 'error', message: 'again', container: 'redis'})

    const lines = samples(await metrics.render())
    expect(lines).toEqual(
      expect.arrayContaining([
        'svc_agent_registrations_total{service="web"} 2',
        'svc_agent_registrations_total{service="redis"} 1',
        'svc_agent_deregistrations_total{service="web",reason="die"} 1',
        'svc_agent_deregistrations_total{service="web",reason="cleanup"} 1',
        'svc_agent_errors_total 2',
      ]),
    )
  })

  it('reads instances, containers and Docker state from the snapshot at each scrape', async () => {
    const agent = new FakeAgent({
      containers: [
        container('web-1', [instance('web', 1), instance('web-admin', 2)]),
        container('web-2', [instance('web', 3, 'critical')], 'paused'),
        container('worker', [], 'stopped'),
      ],
    })
    const metrics = createAgentMetrics(agent)
    expect(samples(await metrics.render())).toEqual(
      expect.arrayContaining([
        'svc_agent_instances{service="web"} 2',
        'svc_agent_instances{service="web-admin"} 1',
        'svc_agent_containers 3',
        'svc_agent_docker_connected 1',
      ]),
    )

    agent.state.docker = 'reconnecting'
    agent.state.containers = [container('web-1', [instance('web', 1)])]
    const later = samples(await metrics.render())
    expect(later).toEqual(
      expect.arrayContaining([
        'svc_agent_instances{service="web"} 1',
        'svc_agent_containers 1',
        'svc_agent_docker_connected 0',
      ]),
    )
    expect(later.join('\n')).not.toContain('web-admin')
  })

  it('tracks the backend state, starting from the last one the snapshot kept', async () => {
    const agent = new FakeAgent()
    agent.emit({type: 'backend', state: 'connected', detail: 'zk'})
    const metrics = createAgentMetrics(agent)
    expect(samples(await metrics.render())).toContain('svc_agent_backend_connected 1')
    agent.emit({type: 'backend', state: 'lost', detail: 'session expired'})
    expect(samples(await metrics.render())).toContain('svc_agent_backend_connected 0')
    agent.emit({type: 'backend', state: 'restored', detail: 'new session'})
    expect(samples(await metrics.render())).toContain('svc_agent_backend_connected 1')
  })

  it('observes event lag and resync durations in seconds', async () => {
    const agent = new FakeAgent()
    const metrics = createAgentMetrics(agent)
    agent.emit({type: 'event-lag', ms: 3})
    agent.emit({type: 'event-lag', ms: 40})
    agent.emit({type: 'event-lag', ms: 2000})
    agent.emit({type: 'resync', registered: 10, removed: 1, durationMs: 120})
    const lines = samples(await metrics.render())
    expect(lines).toEqual(
      expect.arrayContaining([
        'svc_agent_event_lag_seconds_bucket{le="0.001"} 0',
        'svc_agent_event_lag_seconds_bucket{le="0.005"} 1',
        'svc_agent_event_lag_seconds_bucket{le="0.05"} 2',
        'svc_agent_event_lag_seconds_bucket{le="2.5"} 3',
        'svc_agent_event_lag_seconds_bucket{le="+Inf"} 3',
        'svc_agent_event_lag_seconds_sum 2.043',
        'svc_agent_event_lag_seconds_count 3',
        'svc_agent_resync_duration_seconds_bucket{le="0.1"} 0',
        'svc_agent_resync_duration_seconds_bucket{le="0.25"} 1',
        'svc_agent_resync_duration_seconds_sum 0.12',
        'svc_agent_resync_duration_seconds_count 1',
      ]),
    )
  })

  it('declares every metric with HELP and TYPE even before any event', async () => {
    const text = await createAgentMetrics(new FakeAgent()).render()
    for (const [name, type] of [
      ['svc_agent_registrations_total', 'counter'],
      ['svc_agent_deregistrations_total', 'counter'],
      ['svc_agent_errors_total', 'counter'],
      ['svc_agent_instances', 'gauge'],
      ['svc_agent_containers', 'gauge'],
      ['svc_agent_docker_connected', 'gauge'],
      ['svc_agent_backend_connected', 'gauge'],
      ['svc_agent_event_lag_seconds', 'histogram'],
      ['svc_agent_resync_duration_seconds', 'histogram'],
    ]) {
      expect(text).toMatch(new RegExp(`^# HELP ${name} .+\\n# TYPE ${name} ${type}$`, 'm'))
    }
  })

  it('serves them over HTTP and unsubscribes on close', async () => {
    const agent = new FakeAgent({containers: [container('web-1', [instance('web', 1)])]})
    const server = await serveAgentMetrics(agent, '127.0.0.1', 0)
    expect(agent.listenerCount).toBe(1)
    agent.emit({type: 'registered', instance: instance('web', 1), container: 'web-1'})
    const body = await new Promise<string>((resolve, reject) => {
      request(server.url, (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          text += chunk
        })
        res.on('end', () => resolve(text))
      })
        .on('error', reject)
        .end()
    })
    expect(samples(body)).toEqual(
      expect.arrayContaining([
        'svc_agent_registrations_total{service="web"} 1',
        'svc_agent_instances{service="web"} 1',
      ]),
    )
    await server.close()
    expect(agent.listenerCount).toBe(0)
  })
})
