import type Dockerode from 'dockerode'

import {describe, expect, it} from 'vitest'

import {
  defaultHostAddress,
  imageBaseName,
  isImageId,
  parseGoDuration,
  planContainer,
  planContainerWithWarnings,
  PRIVATE_PORT_KEY,
} from '../../src/lib/docker/mapping.js'
import type {AgentOptions, PlannedService} from '../../src/lib/docker/types.js'
import {toInstance} from '../../src/lib/registry/validate.js'
import {PRIVATE_PORT_META} from '../../src/lib/registry/zookeeper/index.js'

const HOST = '127.0.0.1'
const IMAGE_ID = 'sha256:' + 'ab12'.repeat(16)

type Bindings = Array<{HostIp: string; HostPort: string}> | null

interface Fixture {
  id?: string
  name?: string
  image?: string
  imageId?: string
  env?: unknown
  labels?: unknown
  exposed?: string[]
  /** NetworkSettings.Ports: what Docker reports at run time. */
  ports?: Record<string, Bindings> | null
  portBindings?: Record<string, Bindings> | null
  networkMode?: string
  networks?: Record<string, {IPAddress?: string; GlobalIPv6Address?: string}> | null
  ipAddress?: string
  health?: string
  paused?: boolean
}

/** A container as `docker inspect` reports it, with only the fields mapping reads. */
function container(f: Fixture = {}): Dockerode.ContainerInspectInfo {
  const inspect = {
    Id: f.id ?? 'c0ffee'.repeat(10) + 'c0ff',
    Name: f.name ?? '/web1',
    Image: f.imageId ?? IMAGE_ID,
    State: {
      Status: f.paused ? 'paused' : 'running',
      Running: true,
      Paused: f.paused ?? false,
      ...(f.health ? {Health: {Status: f.health, FailingStreak: 0, Log: []}} : {}),
    },
    Config: {
      Hostname: 'c0ffeec0ffee',
      Image: f.image ?? 'registry:5000/team/api:1.2',
      Env: f.env === undefined ? ['PATH=/usr/bin'] : f.env,
      Labels: f.labels === undefined ? {} : f.labels,
      ExposedPorts: Object.fromEntries((f.exposed ?? Object.keys(f.ports ?? {})).map((p) => [p, {}])),
    },
    HostConfig: {NetworkMode: f.networkMode ?? 'default', PortBindings: f.portBindings ?? {}},
    NetworkSettings: {
      IPAddress: f.ipAddress ?? '',
      Ports: f.ports === undefined ? {} : f.ports,
      Networks: f.networks === undefined ? {bridge: {IPAddress: '172.17.0.5', GlobalIPv6Address: ''}} : f.networks,
    },
  }
  // Partial on purpose: Docker's real output also lacks fields and carries nulls that the types do not admit.
  return inspect as unknown as Dockerode.ContainerInspectInfo
}

function options(over: Partial<AgentOptions> = {}): AgentOptions {
  return {
    hostname: 'node1',
    internal: false,
    explicit: false,
    tags: [],
    cleanup: false,
    deregister: 'always',
    retryAttempts: 0,
    retryIntervalMs: 1000,
    ...over,
  }
}

const published = (port: string, hostPort: string, hostIp = '0.0.0.0'): Record<string, Bindings> => ({
  [port]: [{HostIp: hostIp, HostPort: hostPort}],
})

function plan(f: Fixture, over: Partial<AgentOptions> = {}): PlannedService[] {
  return planContainer(container(f), options(over), HOST)
}

function one(f: Fixture, over: Partial<AgentOptions> = {}): PlannedService {
  const services = plan(f, over)
  expect(services).toHaveLength(1)
  return services[0]!
}

const name = (image: string): string => one({image, ports: published('80/tcp', '8080')}).input.service

/** The address --internal advertises for a container exposing 80/tcp. */
const address = (f: Fixture, over: Partial<AgentOptions> = {}): string =>
  one({exposed: ['80/tcp'], ...f}, {internal: true, ...over}).input.address

const health = (f: Fixture): string | undefined => one({ports: published('80/tcp', '8080'), ...f}).input.health

const summary = (services: PlannedService[]): string[] =>
  services.map((s) => `${s.input.service} ${s.input.id} ${s.input.address}:${s.input.port}`)

describe('planContainer: published ports', () => {
  it('registers a published port at the host address, with registrator-style id, source and private port', () => {
    const service = one({ports: published('80/tcp', '8080')})
    expect(service).toEqual({
      input: {
        service: 'api',
        id: 'node1:web1:80',
        address: HOST,
        port: 8080,
        tags: [],
        meta: {[PRIVATE_PORT_KEY]: '80'},
        source: {
          containerId: 'c0ffee'.repeat(10) + 'c0ff',
          containerName: 'web1',
          image: 'registry:5000/team/api:1.2',
          host: 'node1',
        },
      },
    })
    expect(() => toInstance(service.input)).not.toThrow()
  })

  it('uses the same meta key as the ZooKeeper backend for the private port', () => {
    expect(PRIVATE_PORT_KEY).toBe(PRIVATE_PORT_META)
  })

  it('skips ports without a host binding', () => {
    expect(plan({exposed: ['80/tcp', '443/tcp'], ports: {'80/tcp': null, '443/tcp': []}})).toEqual([])
    expect(summary(plan({ports: {'80/tcp': null, ...published('443/tcp', '8443')}}))).toEqual([
      'api node1:web1:443 127.0.0.1:8443',
    ])
  })

  it('advertises a specific host IP, and --ip over everything', () => {
    expect(one({ports: published('80/tcp', '8080', '10.1.2.3')}).input.address).toBe('10.1.2.3')
    expect(one({ports: published('80/tcp', '8080', '')}).input.address).toBe(HOST)
    expect(one({ports: published('80/tcp', '8080', '10.1.2.3')}, {ip: '192.168.9.9'}).input.address).toBe('192.168.9.9')
    expect(one({ports: published('80/tcp', '8080')}, {ip: '192.168.9.9'}).input.address).toBe('192.168.9.9')
  })

  it('falls back to the configured HostConfig.PortBindings when the runtime shows none', () => {
    expect(summary(plan({exposed: ['80/tcp'], ports: null, portBindings: published('80/tcp', '9000')}))).toEqual([
      'api node1:web1:80 127.0.0.1:9000',
    ])
    // an empty HostPort is a random port Docker has not chosen yet: nothing to advertise
    expect(plan({exposed: ['80/tcp'], ports: null, portBindings: published('80/tcp', '')})).toEqual([])
  })

  it('registers exposed ports at their own number with --net=host', () => {
    expect(
      summary(plan({networkMode: 'host', exposed: ['9090/tcp'], ports: {}, networks: {host: {IPAddress: ''}}})),
    ).toEqual(['api node1:web1:9090 127.0.0.1:9090'])
  })

  it('returns services sorted by private port, tcp before udp', () => {
    const services = plan({
      ports: {
        ...published('8080/tcp', '1'),
        ...published('53/udp', '53'),
        ...published('53/tcp', '53'),
        ...published('443/tcp', '2'),
      },
    })
    expect(services.map((s) => s.input.id)).toEqual([
      'node1:web1:53',
      'node1:web1:53:udp',
      'node1:web1:443',
      'node1:web1:8080',
    ])
  })
})

describe('planContainer: IPv6 bindings', () => {
  it('registers a port published on 0.0.0.0 and :: once, at the IPv4 address', () => {
    const ports = {
      '80/tcp': [
        {HostIp: '::', HostPort: '8080'},
        {HostIp: '0.0.0.0', HostPort: '8080'},
      ],
    }
    expect(summary(plan({ports}))).toEqual(['api node1:web1:80 127.0.0.1:8080'])
  })

  it('prefers the IPv4 binding when the two differ', () => {
    const ports = {
      '80/tcp': [
        {HostIp: '::1', HostPort: '9001'},
        {HostIp: '127.0.0.2', HostPort: '9000'},
      ],
    }
    expect(summary(plan({ports}))).toEqual(['api node1:web1:80 127.0.0.2:9000'])
  })

  it('uses the host address for ::, and a specific IPv6 address as it is', () => {
    expect(one({ports: published('80/tcp', '8080', '::')}).input.address).toBe(HOST)
    expect(one({ports: published('80/tcp', '8080', '::1')}).input.address).toBe('::1')
    expect(one({ports: published('80/tcp', '8080', '[fd00::5]')}).input.address).toBe('fd00::5')
  })

  it('brackets IPv6 addresses in check targets', () => {
    const service = one({ports: published('80/tcp', '8080', '::1'), env: ['SERVICE_CHECK_HTTP=/health']})
    expect(service.check?.http).toBe('http://[::1]:8080/health')
    const tcp = one({ports: published('80/tcp', '8080', '::1'), env: ['SERVICE_CHECK_TCP=true']})
    expect(tcp.check?.tcp).toBe('[::1]:8080')
  })
})

describe('planContainer: names and ids', () => {
  it('names a multi-port container <name>-<private port>, except ports named per port', () => {
    const ports = {...published('80/tcp', '8080'), ...published('443/tcp', '8443'), ...published('9000/tcp', '9000')}
    expect(summary(plan({ports}))).toEqual([
      'api-80 node1:web1:80 127.0.0.1:8080',
      'api-443 node1:web1:443 127.0.0.1:8443',
      'api-9000 node1:web1:9000 127.0.0.1:9000',
    ])
    const named = plan({ports, env: ['SERVICE_NAME=shop', 'SERVICE_443_NAME=shop-tls']})
    expect(named.map((s) => s.input.service)).toEqual(['shop-80', 'shop-tls', 'shop-9000'])
  })

  it('counts ignored ports when deciding on the suffix, as registrator does', () => {
    const ports = {...published('80/tcp', '8080'), ...published('443/tcp', '8443')}
    expect(plan({ports, env: ['SERVICE_443_IGNORE=1']}).map((s) => s.input.service)).toEqual(['api-80'])
  })

  it('adds :udp to the id and a udp tag for UDP ports', () => {
    const services = plan({
      ports: {...published('53/udp', '5353'), ...published('53/tcp', '5353')},
      env: ['SERVICE_TAGS=dns'],
    })
    expect(services.map((s) => [s.input.service, s.input.id, s.input.tags])).toEqual([
      ['api-53', 'node1:web1:53', ['dns']],
      ['api-53', 'node1:web1:53:udp', ['dns', 'udp']],
    ])
  })

  it('takes SERVICE_ID, per port first; a generic id on several ports gets the port appended', () => {
    expect(one({ports: published('80/tcp', '8080'), env: ['SERVICE_ID=web-a']}).input.id).toBe('web-a')
    const ports = {...published('80/tcp', '8080'), ...published('53/udp', '53')}
    const services = plan({ports, labels: {SERVICE_ID: 'web-a', SERVICE_80_ID: 'web-a-http'}})
    expect(services.map((s) => s.input.id)).toEqual(['web-a:53:udp', 'web-a-http'])
  })

  it('keeps the default id and warns when SERVICE_ID is not a valid id', () => {
    const result = planContainerWithWarnings(
      container({ports: published('80/tcp', '8080'), env: ['SERVICE_ID=has space']}),
      options(),
      HOST,
    )
    expect(result.services[0]?.input.id).toBe('node1:web1:80')
    expect(result.warnings).toEqual([expect.stringMatching(/^web1: SERVICE_ID "has space" ignored/)])
  })

  it('derives the default name from the image base name, without registry, tag or digest', () => {
    expect(name('registry:5000/team/api:1.2')).toBe('api')
    expect(name('busybox@sha256:' + 'f'.repeat(64))).toBe('busybox')
    expect(name('quay.io/org/redis:7@sha256:' + 'f'.repeat(64))).toBe('redis')
    expect(name('nginx')).toBe('nginx')
    expect(imageBaseName('registry:5000/api')).toBe('api')
    expect(imageBaseName('')).toBeUndefined()
  })

  it('uses the compose service, else the container name, when the image is an ID or a bare digest (#701)', () => {
    const compose = {'com.docker.compose.service': 'consul', 'com.docker.compose.project': 'demo'}
    const ports = published('8500/tcp', '8500')
    expect(one({image: IMAGE_ID, labels: compose, ports}).input.service).toBe('consul')
    expect(one({image: IMAGE_ID, ports}).input.service).toBe('web1')
    expect(one({image: 'ab12ab12ab12', labels: compose, ports}).input.service).toBe('consul')
    expect(one({image: 'f'.repeat(64), name: '/demo-consul-1', ports}).input.service).toBe('demo-consul-1')
    // a compose container with a named image keeps registrator's image-based name
    expect(one({image: 'hashicorp/consul:1.8', labels: compose, ports}).input.service).toBe('consul')
    expect(one({image: 'demo_web', labels: {'com.docker.compose.service': 'web'}, ports}).input.service).toBe(
      'demo_web',
    )
    expect(isImageId('ab12ab12ab12', IMAGE_ID)).toBe(true)
    expect(isImageId('abcdefabcdef', IMAGE_ID)).toBe(false)
    expect(isImageId('sha256:' + 'f'.repeat(64))).toBe(true)
  })

  it('sanitizes names to letters, digits, -, _ and ., at most 128 characters, port suffix kept', () => {
    const result = planContainerWithWarnings(
      container({ports: published('80/tcp', '8080'), labels: {SERVICE_NAME: 'my service/v2'}}),
      options(),
      HOST,
    )
    expect(result.services[0]?.input.service).toBe('my-service-v2')
    expect(result.warnings).toEqual([
      expect.stringContaining('SERVICE_NAME "my service/v2" registered as "my-service-v2"'),
    ])
    const ports = {...published('80/tcp', '8080'), ...published('443/tcp', '8443')}
    const long = plan({ports, env: ['SERVICE_NAME=' + 'x'.repeat(200)]})
    expect(long.map((s) => s.input.service)).toEqual(['x'.repeat(125) + '-80', 'x'.repeat(124) + '-443'])
    for (const s of long) expect(() => toInstance(s.input)).not.toThrow()
  })
})

describe('planContainer: settings from env and labels', () => {
  it('lets labels win over env, and per-port settings win over generic ones', () => {
    const f: Fixture = {
      ports: published('80/tcp', '8080'),
      env: ['SERVICE_NAME=from-env'],
      labels: {SERVICE_NAME: 'from-label'},
    }
    expect(one(f).input.service).toBe('from-label')
    expect(one({...f, env: ['SERVICE_80_NAME=port-env']}).input.service).toBe('port-env')
    expect(one({...f, env: ['SERVICE_81_NAME=other-port']}).input.service).toBe('from-label')
    const meta = one({
      ports: published('80/tcp', '8080'),
      env: ['SERVICE_VERSION=1', 'SERVICE_80_ZONE=a', 'SERVICE_OWNER=env'],
      labels: {SERVICE_ZONE: 'b', SERVICE_OWNER: 'label'},
    }).input.meta
    expect(meta).toEqual({version: '1', zone: 'a', owner: 'label', [PRIVATE_PORT_KEY]: '80'})
  })

  it('turns other SERVICE_ keys into lower-case meta, drops invalid keys with a warning, keeps reserved ones out', () => {
    const result = planContainerWithWarnings(
      container({
        ports: published('80/tcp', '8080'),
        env: [
          'SERVICE_Region=eu-west',
          'SERVICE_TEAM.NAME=pay',
          'SERVICE_BAD KEY=x',
          'SERVICE_1ST=x',
          'SERVICE_81_ZONE=other-port',
          'SERVICE_EMPTY=',
          'SERVICE_CHECK_INTERVAL=5s',
          'SERVICE_NETWORK=front',
          'SERVICE_PRIVATE_PORT=99',
          'SERVICE_=x',
          'service_lower=x',
          'OTHER=x',
        ],
      }),
      options(),
      HOST,
    )
    expect(result.services[0]?.input.meta).toEqual({
      region: 'eu-west',
      'team.name': 'pay',
      empty: '',
      [PRIVATE_PORT_KEY]: '80',
    })
    expect(result.warnings).toEqual(
      expect.arrayContaining([
        'web1: SERVICE_BAD KEY ignored: "bad key" is not a valid meta key',
        'web1: SERVICE_PRIVATE_PORT ignored: private_port is set by svc',
      ]),
    )
    expect(result.warnings).toContain('web1: SERVICE_1ST ignored: "1st" is not a valid meta key')
    // another port's setting is neither meta here nor a warning
    expect(result.warnings.join('\n')).not.toMatch(/ZONE/)
  })

  it('never throws on odd input: null labels and env, malformed env items, null ports and networks', () => {
    const odd = [
      container({env: null, labels: null, ports: null, networks: null}),
      container({
        env: ['NOEQUALS', '=novalue', 42, null, 'SERVICE_NAME'],
        labels: {SERVICE_TAGS: 7},
        ports: published('80/tcp', '8080'),
      }),
      container({
        ports: {
          'notaport/tcp': [{HostIp: '', HostPort: '1'}],
          '70000/tcp': null,
          '80/tcp': [null, {HostIp: null, HostPort: 'x'}],
        } as never,
      }),
      {} as Dockerode.ContainerInspectInfo,
      {
        Config: null,
        NetworkSettings: {Ports: {'80/tcp': [{HostPort: '8080'}]}},
        HostConfig: null,
        State: null,
      } as never,
    ]
    for (const c of odd) expect(() => planContainer(c, options(), HOST)).not.toThrow()
    expect(summary(planContainer(odd[1]!, options(), HOST))).toEqual(['api node1:web1:80 127.0.0.1:8080'])
    expect(summary(planContainer(odd[4]!, options(), HOST))).toEqual(['container node1:container:80 127.0.0.1:8080'])
    expect(planContainer({} as Dockerode.ContainerInspectInfo, options({internal: true}), HOST)).toEqual([])
  })
})

describe('planContainer: IGNORE, --explicit, --tags', () => {
  it('skips a container or one port when IGNORE has any value; an empty per-port value undoes it', () => {
    const ports = {...published('80/tcp', '8080'), ...published('443/tcp', '8443')}
    expect(plan({ports, labels: {SERVICE_IGNORE: 'true'}})).toEqual([])
    expect(plan({ports, env: ['SERVICE_IGNORE=yes']})).toEqual([])
    expect(plan({ports, env: ['SERVICE_IGNORE=']})).toHaveLength(2)
    expect(plan({ports, env: ['SERVICE_80_IGNORE=1']}).map((s) => s.input.id)).toEqual(['node1:web1:443'])
    expect(plan({ports, labels: {SERVICE_IGNORE: 'true', SERVICE_443_IGNORE: ''}}).map((s) => s.input.id)).toEqual([
      'node1:web1:443',
    ])
  })

  it('with --explicit registers only ports whose service is named', () => {
    const ports = {...published('80/tcp', '8080'), ...published('443/tcp', '8443')}
    expect(plan({ports}, {explicit: true})).toEqual([])
    expect(plan({ports, env: ['SERVICE_NAME=']}, {explicit: true})).toEqual([])
    expect(plan({ports, env: ['SERVICE_NAME=shop']}, {explicit: true}).map((s) => s.input.service)).toEqual([
      'shop-80',
      'shop-443',
    ])
    expect(plan({ports, labels: {SERVICE_443_NAME: 'tls'}}, {explicit: true}).map((s) => s.input.service)).toEqual([
      'tls',
    ])
  })

  it('splits SERVICE_TAGS on commas and appends --tags without duplicates', () => {
    const result = planContainerWithWarnings(
      container({ports: published('80/tcp', '8080'), env: ['SERVICE_TAGS= a, b,,bad tag,a,prod']}),
      options({tags: ['prod', 'dc1', 'has,comma']}),
      HOST,
    )
    expect(result.services[0]?.input.tags).toEqual(['a', 'b', 'prod', 'dc1'])
    expect(result.warnings).toEqual([
      'web1: --tags tag "has,comma" ignored: tags are at most 256 characters, without spaces or commas',
      'web1: SERVICE_TAGS tag "bad tag" ignored: tags are at most 256 characters, without spaces or commas',
    ])
    expect(one({ports: published('80/tcp', '8080'), env: ['SERVICE_TAGS=x', 'SERVICE_80_TAGS=y']}).input.tags).toEqual([
      'y',
    ])
  })
})

describe('planContainer: checks', () => {
  const ports = published('80/tcp', '8080')
  const check = (env: string[], over: Partial<AgentOptions> = {}): PlannedService => one({ports, env}, over)

  it('builds an HTTP check from a path at the advertised address and port, 10s interval and 5s timeout', () => {
    expect(check(['SERVICE_CHECK_HTTP=/health']).check).toEqual({
      http: 'http://127.0.0.1:8080/health',
      intervalMs: 10_000,
      timeoutMs: 5000,
    })
    expect(check(['SERVICE_CHECK_HTTP=status?full=1']).check?.http).toBe('http://127.0.0.1:8080/status?full=1')
    expect(check(['SERVICE_CHECK_HTTP=/health'], {ip: '10.0.0.9'}).check?.http).toBe('http://10.0.0.9:8080/health')
  })

  it('takes a full URL as it is, and builds https URLs from SERVICE_CHECK_HTTPS', () => {
    expect(check(['SERVICE_CHECK_HTTP=http://10.9.9.9:9000/ready']).check?.http).toBe('http://10.9.9.9:9000/ready')
    expect(check(['SERVICE_CHECK_HTTPS=/health']).check?.http).toBe('https://127.0.0.1:8080/health')
  })

  it('builds a TCP check unless the value says false', () => {
    expect(check(['SERVICE_CHECK_TCP=true']).check).toEqual({
      tcp: '127.0.0.1:8080',
      intervalMs: 10_000,
      timeoutMs: 5000,
    })
    expect(check(['SERVICE_CHECK_TCP=false']).check).toBeUndefined()
  })

  it('reads interval, timeout and deregister-after as Go durations, per port first', () => {
    const planned = check([
      'SERVICE_CHECK_HTTP=/h',
      'SERVICE_CHECK_INTERVAL=15s',
      'SERVICE_80_CHECK_INTERVAL=1m30s',
      'SERVICE_CHECK_TIMEOUT=500ms',
      'SERVICE_CHECK_DEREGISTER_AFTER=2h',
    ])
    expect(planned.check).toEqual({
      http: 'http://127.0.0.1:8080/h',
      intervalMs: 90_000,
      timeoutMs: 500,
      deregisterAfterMs: 7_200_000,
    })
    expect(planned.ttlMs).toBeUndefined()
  })

  it('turns SERVICE_CHECK_TTL into the instance TTL, without a check', () => {
    const planned = check(['SERVICE_CHECK_TTL=30s'])
    expect(planned.ttlMs).toBe(30_000)
    expect(planned.check).toBeUndefined()
  })

  it('keeps registrator’s one check, HTTP before HTTPS before TTL before TCP, and says what it ignored', () => {
    const result = planContainerWithWarnings(
      container({
        ports,
        env: ['SERVICE_CHECK_TCP=1', 'SERVICE_CHECK_TTL=20s', 'SERVICE_CHECK_HTTP=/h', 'SERVICE_CHECK_SCRIPT=ping'],
      }),
      options(),
      HOST,
    )
    expect(result.services[0]?.check?.http).toBe('http://127.0.0.1:8080/h')
    expect(result.services[0]?.ttlMs).toBeUndefined()
    expect(result.warnings).toEqual([
      'web1: SERVICE_CHECK_SCRIPT ignored: svc runs HTTP, HTTPS, TCP and TTL checks only',
      'web1: SERVICE_CHECK_TTL ignored: SERVICE_CHECK_HTTP is the check (one check per service)',
      'web1: SERVICE_CHECK_TCP ignored: SERVICE_CHECK_HTTP is the check (one check per service)',
    ])
    expect(result.services[0]?.input.meta).toEqual({[PRIVATE_PORT_KEY]: '80'})
    expect(check(['SERVICE_CHECK_TCP=1', 'SERVICE_CHECK_TTL=20s']).check).toBeUndefined()
  })

  it('falls back to defaults and warns on malformed durations', () => {
    const result = planContainerWithWarnings(
      container({ports, env: ['SERVICE_CHECK_TCP=1', 'SERVICE_CHECK_INTERVAL=soon', 'SERVICE_CHECK_TIMEOUT=0s']}),
      options(),
      HOST,
    )
    expect(result.services[0]?.check).toEqual({tcp: '127.0.0.1:8080', intervalMs: 10_000, timeoutMs: 5000})
    expect(result.warnings).toHaveLength(2)
    expect(result.warnings[0]).toMatch(/SERVICE_CHECK_INTERVAL "soon" ignored/)
    const ttl = planContainerWithWarnings(container({ports, env: ['SERVICE_CHECK_TTL=-5s']}), options(), HOST)
    expect(ttl.services[0]?.ttlMs).toBeUndefined()
    expect(ttl.warnings).toEqual([expect.stringMatching(/SERVICE_CHECK_TTL "-5s" ignored/)])
  })

  it('parses Go durations', () => {
    const cases: Array<[string, number | undefined]> = [
      ['10s', 10_000],
      ['1m', 60_000],
      ['500ms', 500],
      ['1m30s', 90_000],
      ['1.5h', 5_400_000],
      ['2h45m0.5s', 9_900_500],
      ['1500us', 1.5],
      ['2000000ns', 2],
      ['.5s', 500],
      ['30', 30_000],
      [' 5s ', 5000],
      ['', undefined],
      ['s', undefined],
      ['10', 10_000],
      ['10x', undefined],
      ['-1s', undefined],
      ['1s 2s', undefined],
      ['1d', undefined],
    ]
    for (const [text, ms] of cases) expect([text, parseGoDuration(text)]).toEqual([text, ms])
  })
})

describe('planContainer: --internal and networks', () => {
  it('registers every exposed port at the container address and the private port', () => {
    const services = plan(
      {exposed: ['80/tcp', '53/udp'], ports: {'80/tcp': null, ...published('443/tcp', '8443')}},
      {internal: true},
    )
    expect(summary(services)).toEqual([
      'api-53 node1:web1:53:udp 172.17.0.5:53',
      'api-80 node1:web1:80 172.17.0.5:80',
      'api-443 node1:web1:443 172.17.0.5:443',
    ])
  })

  it('lets --ip override the container address too (#495)', () => {
    expect(one({exposed: ['80/tcp']}, {internal: true, ip: '10.0.0.1'}).input.address).toBe('10.0.0.1')
  })

  const networks = {
    zeta: {IPAddress: '10.0.2.5'},
    alpha: {IPAddress: '10.0.1.5'},
    v6only: {IPAddress: '', GlobalIPv6Address: 'fd00::5'},
  }
  it('uses the only network, or the default bridge address, or the first network by name (#498)', () => {
    expect(address({networks: {front: {IPAddress: '10.9.0.2'}}})).toBe('10.9.0.2')
    expect(address({networks, ipAddress: '172.17.0.9'})).toBe('172.17.0.9')
    expect(address({networks})).toBe('10.0.1.5')
  })

  it('takes the network named by SERVICE_NETWORK (label, env, per port) over --network', () => {
    expect(address({networks}, {network: 'zeta'})).toBe('10.0.2.5')
    expect(address({networks, labels: {SERVICE_NETWORK: 'v6only'}}, {network: 'zeta'})).toBe('fd00::5')
    expect(address({networks, env: ['SERVICE_NETWORK=zeta', 'SERVICE_80_NETWORK=alpha']})).toBe('10.0.1.5')
  })

  it('warns and falls back when the named network is missing', () => {
    const result = planContainerWithWarnings(
      container({exposed: ['80/tcp'], networks}),
      options({internal: true, network: 'nope'}),
      HOST,
    )
    expect(result.services[0]?.input.address).toBe('10.0.1.5')
    expect(result.warnings).toEqual(['web1: network "nope" not found among alpha, v6only, zeta; using the default'])
  })

  it('skips ports with a warning when the container has no address, except on the host network', () => {
    const result = planContainerWithWarnings(
      container({exposed: ['80/tcp'], networks: {none: {IPAddress: ''}}}),
      options({internal: true}),
      HOST,
    )
    expect(result.services).toEqual([])
    expect(result.warnings).toEqual(['web1: port 80/tcp skipped: the container has no network address'])
    expect(address({networkMode: 'host', networks: {host: {IPAddress: ''}}})).toBe(HOST)
  })
})

describe('planContainer: Docker health', () => {
  it('maps HEALTHCHECK states and leaves health unset without one (#578)', () => {
    expect(health({health: 'healthy'})).toBe('passing')
    expect(health({health: 'unhealthy'})).toBe('critical')
    expect(health({health: 'starting'})).toBe('unknown')
    expect(health({health: 'none'})).toBeUndefined()
    expect(health({})).toBeUndefined()
  })

  it('marks paused containers critical', () => {
    expect(health({paused: true})).toBe('critical')
    expect(health({paused: true, health: 'healthy'})).toBe('critical')
  })
})

describe('defaultHostAddress', () => {
  it('returns an IPv4 address of this host', () => {
    expect(defaultHostAddress()).toMatch(/^\d+\.\d+\.\d+\.\d+$/)
  })
})
