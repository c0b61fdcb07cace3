import type {AgentSource} from '../../src/lib/docker/source.js'
import type {AgentEvent, AgentSnapshot, ContainerState} from '../../src/lib/docker/types.js'
import type {Health, ServiceInstance} from '../../src/lib/registry/types.js'

type EventBody = AgentEvent extends infer E ? (E extends AgentEvent ? Omit<E, 'ts'> : never) : never

/** An AgentSource driven by the test: `emit` records and delivers an event, `state` is what snapshot() returns. */
export class FakeAgent implements AgentSource {
  state: AgentSnapshot
  private readonly listeners = new Set<(e: AgentEvent) => void>()
  private clock: number

  constructor(state: Partial<AgentSnapshot> = {}, start = Date.UTC(2026, 0, 2, 3, 4, 5)) {
    this.state = {backend: 'zk://127.0.0.1:2181/services', docker: 'connected', containers: [], events: [], ...state}
    this.clock = start
  }

  get listenerCount(): number {
    return this.listeners.size
  }

  on(listener: (e: AgentEvent) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  snapshot(): AgentSnapshot {
    return {...this.state, containers: [...this.state.containers], events: [...this.state.events]}
  }

  emit(body: EventBody): AgentEvent {
    this.clock += 1000
    const event = {ts: this.clock, ...body} as AgentEvent
    if (event.type !== 'event-lag') this.state.events.push(event)
    for (const listener of this.listeners) listener(event)
    return event
  }
}

export function instance(
  service: string,
  port: number,
  health: Health = 'passing',
  address = '10.0.0.5',
): ServiceInstance {
  return {service, id: `host:${service}:${port}`, address, port, tags: [], meta: {}, health}
}

export function container(
  name: string,
  services: ServiceInstance[],
  state: ContainerState['state'] = 'running',
): ContainerState {
  return {id: `id-${name}`, name, image: `${name}:latest`, state, services}
}
