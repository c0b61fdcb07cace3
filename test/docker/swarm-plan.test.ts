import {describe, expect, it} from 'vitest'

import {planContainer} from '../../src/lib/docker/mapping.js'
import {PRIVATE_PORT_KEY, SWARM_SERVICE_KEY} from '../../src/lib/docker/settings.js'
import {converged, planSwarm} from '../../src/lib/docker/swarm/plan.js'
import type {SwarmService, SwarmState, SwarmTask} from '../../src/lib/docker/swarm/source.js'
import type {AgentOptions} from '../../src/lib/docker/types.js'

const options = (over: Partial<AgentOptions> = {}): AgentOptions => ({
  hostname: 'agent-host',
  internal: false,
  explicit: false,
  tags: [],
  cleanup: false,
  deregister: 'always',
  retryAttempts: 0,
  retryIntervalMs: 1000,
  ...over,
})

const nodes: SwarmState['nodes'] = [
  {ID: 'n1', Description: {Hostname: 'node-1'}, Status: {State: 'ready', Addr: '10.0.0.1'}},
  {ID: 'n2', Description: {Hostname: 'node-2'}, Status: {State: 'ready', Addr: '10.0.0.2'}},
  {ID: 'n3', Description: {Hostname: 'node-3'}, Status: {State: 'down', Addr: '10.0.0.3'}},
]

function service(over: {
  ports: SwarmService['Endpoint'] extends infer E ? (E extends {Ports?: infer P} ? P : never) : never
  labels?: Record<string, string>
  containerLabels?: Record<string, string>
  env?: string[]
  replicas?: number
}): SwarmService {
  return {
    ID: 'svc1',
    Spec: {
      Name: 'web',
      Labels: over.labels ?? {},
      Mode: {Replicated: {Replicas: over.replicas ?? 1}},
      TaskTemplate: {ContainerSpec: {Image: 'shop/web:1.2', Labels: over.containerLabels ?? {}, Env: over.env ?? []}},
    },
    Endpoint: {Ports: over.ports},
  }
}

function task(slot: number, node: string, hostPort?: number, state = 'running'): SwarmTask {
  return {
    ID: `t${slot}`,
    ServiceID: 'svc1',
    NodeID: node,
    Slot: slot,
    DesiredState: 'running',
    Status: {
      State: state,
      ContainerStatus: {ContainerID: `c${slot}`},
      PortStatus: {
        Ports:
          hostPort === undefined
            ? []
            : [{Protocol: 'tcp', TargetPort: 80, PublishedPort: hostPort, PublishMode: 'host'}],
      },
    },
  }
}

const ingress = [{Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'ingress'}]
const hostMode = [{Protocol: 'tcp', TargetPort: 80, PublishMode: 'host'}]

describe('planSwarm', () => {
  it('ingress: one instance per ready node at its address and the published port, while a task runs', () => {
    const {services} = planSwarm({services: [service({ports: ingress})], tasks: [task(1, 'n1')], nodes}, options())
    expect(services.map((s) => [s.input.service, s.input.id, s.input.address, s.input.port])).toEqual([
      ['web', 'node-1:web:8080', '10.0.0.1', 8080],
      ['web', 'node-2:web:8080', '10.0.0.2', 8080],
    ])
    expect(services[0]!.input.meta).toEqual(
      Object.fromEntries([
        [PRIVATE_PORT_KEY, '80'],
        [SWARM_SERVICE_KEY, 'web'],
      ]),
    )
    expect(services[0]!.input.source).toEqual({
      containerId: 'svc1',
      containerName: 'web',
      image: 'shop/web:1.2',
      host: 'agent-host',
    })
    expect(planSwarm({services: [service({ports: ingress})], tasks: [], nodes}, options()).services).toEqual([])
  })

  it('ingress with --ip: one instance at that address', () => {
    const {services} = planSwarm(
      {services: [service({ports: ingress})], tasks: [task(1, 'n1')], nodes},
      options({ip: '192.0.2.7'}),
    )
    expect(services.map((s) => `${s.input.id} ${s.input.address}:${s.input.port}`)).toEqual([
      'agent-host:web:8080 192.0.2.7:8080',
    ])
  })

  it("host mode: one instance per running task at its node's address and its own port", () => {
    const tasks = [task(1, 'n1', 30_001), task(2, 'n2', 30_002), task(3, 'n1', undefined, 'starting')]
    const {services} = planSwarm({services: [service({ports: hostMode, replicas: 3})], tasks, nodes}, options())
    expect(
      services.map((s) => `${s.input.id} ${s.input.address}:${s.input.port} ${s.input.source.containerId}`),
    ).toEqual(['node-1:web.1:30001 10.0.0.1:30001 c1', 'node-2:web.2:30002 10.0.0.2:30002 c2'])
    expect(converged({services: [service({ports: hostMode, replicas: 3})], tasks, nodes})).toBe(false)
    expect(converged({services: [service({ports: hostMode, replicas: 2})], tasks: tasks.slice(0, 2), nodes})).toBe(true)
  })

  it("labels as on containers: the service's win over the container's, which win over env; checks and --tags", () => {
    const svc = service({
      ports: ingress,
      env: ['SERVICE_NAME=from-env', 'SERVICE_VERSION=1'],
      containerLabels: {SERVICE_NAME: 'from-container', SERVICE_TAGS: 'a,b'},
      labels: {SERVICE_NAME: 'shop', SERVICE_CHECK_HTTP: '/health', SERVICE_CHECK_INTERVAL: '2s'},
    })
    const {services} = planSwarm(
      {services: [svc], tasks: [task(1, 'n1')], nodes: nodes.slice(0, 1)},
      options({tags: ['swarm']}),
    )
    expect(services).toHaveLength(1)
    expect(services[0]!.input).toMatchObject({service: 'shop', tags: ['a', 'b', 'swarm'], meta: {version: '1'}})
    expect(services[0]!.check).toMatchObject({http: 'http://10.0.0.1:8080/health', intervalMs: 2000})
  })

  it('per-port names, IGNORE, --explicit, udp, and SERVICE_ID refused with a warning', () => {
    const ports = [
      {Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'ingress'},
      {Protocol: 'udp', TargetPort: 53, PublishedPort: 5353, PublishMode: 'ingress'},
      {Protocol: 'tcp', TargetPort: 9000, PublishedPort: 9000, PublishMode: 'ingress'},
    ]
    const svc = service({ports, labels: {SERVICE_80_NAME: 'http', SERVICE_9000_IGNORE: '1', SERVICE_ID: 'fixed'}})
    const state = {services: [svc], tasks: [task(1, 'n1')], nodes: nodes.slice(0, 1)}
    const {services, warnings} = planSwarm(state, options())
    expect(services.map((s) => `${s.input.service} ${s.input.id} ${s.input.tags?.join(',')}`)).toEqual([
      'web-53 node-1:web:5353:udp udp',
      'http node-1:web:8080 ',
    ])
    expect(warnings).toEqual(['service web: SERVICE_ID ignored: each task of a Swarm service needs an id of its own'])
    expect(planSwarm(state, options({explicit: true})).services.map((s) => s.input.service)).toEqual(['http'])
  })

  it('a node without a usable address is skipped with a warning naming --ip', () => {
    const state = {
      services: [service({ports: ingress})],
      tasks: [task(1, 'n1')],
      nodes: [{ID: 'n1', Status: {State: 'ready', Addr: '0.0.0.0'}}],
    }
    const {services, warnings} = planSwarm(state, options())
    expect(services).toEqual([])
    expect(warnings[0]).toMatch(/port 80\/tcp skipped .* "0\.0\.0\.0": give --ip/)
  })
})

describe('the container side under --swarm', () => {
  it("leaves a Swarm task's container to the Swarm side, and plans it as before without --swarm", () => {
    const container = {
      Id: 'c'.repeat(64),
      Name: '/web.1.abc',
      Config: {Image: 'shop/web:1.2', Labels: {'com.docker.swarm.task.id': 'abc'}, Env: []},
      State: {Running: true},
      NetworkSettings: {Ports: {'80/tcp': [{HostIp: '0.0.0.0', HostPort: '30001'}]}},
      HostConfig: {},
    } as unknown as Parameters<typeof planContainer>[0]
    expect(planContainer(container, options({swarm: true}), '127.0.0.1')).toEqual([])
    expect(planContainer(container, options(), '127.0.0.1')).toHaveLength(1)
  })
})
