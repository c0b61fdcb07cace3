/* eslint-disable import/no-named-as-default-member -- fast-check is used as fc.<arbitrary>, as its documentation does */
import type Dockerode from 'dockerode'

import fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import {planContainerWithWarnings, PRIVATE_PORT_KEY} from '../../src/lib/docker/mapping.js'
import type {AgentOptions} from '../../src/lib/docker/types.js'
import {toInstance} from '../../src/lib/registry/validate.js'

const RUNS = {numRuns: 300}
const HOST = '127.0.0.1'

/** Any text, short or (rarely) huge, odd characters and unicode included. */
const text = fc.oneof(
  {weight: 6, arbitrary: fc.string({unit: 'binary', maxLength: 30})},
  {weight: 3, arbitrary: fc.string({unit: fc.constantFrom('.', '-', '_', '/', ':', ' ', ',', 'a', '8', '@', '%')})},
  {weight: 1, arbitrary: fc.string({minLength: 300, maxLength: 3000})},
  {weight: 1, arbitrary: fc.constantFrom('', '.', '..', '/', '__proto__', 'sha256:', 'constructor')},
)

/** What follows SERVICE_: registrator's keys, per-port forms, and anything else. */
const settingKey = fc.oneof(
  fc.constantFrom(
    'NAME',
    'ID',
    'TAGS',
    'CHECK_HTTP',
    'CHECK_HTTPS',
    'CHECK_TCP',
    'CHECK_TTL',
    'CHECK_INTERVAL',
    'CHECK_TIMEOUT',
    'CHECK_DEREGISTER_AFTER',
    'CHECK_SCRIPT',
    'NETWORK',
    'PRIVATE_PORT',
    '__PROTO__',
    'version',
    'Weight',
    '',
  ),
  fc.string({unit: 'binary', maxLength: 12}),
)
const portKey = fc.oneof(fc.constantFrom(80, 443, 53, 8080), fc.integer({min: 0, max: 70_000}))
const serviceSetting = fc
  .tuple(fc.option(portKey, {nil: undefined}), settingKey)
  // a truthy IGNORE drops a port on purpose; the other properties below cover it
  .filter(([, key]) => !key.toLowerCase().includes('ignore'))
  .map(([port, key]) => `SERVICE_${port === undefined ? '' : `${port}_`}${key}`)

const settings = fc.dictionary(fc.oneof(serviceSetting, text), fc.oneof(text, fc.constantFrom('x', 'web')), {
  maxKeys: 8,
})

const hostIp = fc.constantFrom('', '0.0.0.0', '127.0.0.1', '::', '::1', '[::1]')
const protocol = fc.constantFrom('tcp', 'udp', 'sctp')

/** Well-formed published ports: each must be registered whatever the metadata says. */
const publishedPorts = fc.uniqueArray(
  fc.record({
    // the port numbers the SERVICE_<port>_* settings name, often enough for them to meet
    port: fc.oneof(fc.constantFrom(80, 443, 53, 8080), fc.integer({min: 1, max: 65_535})),
    protocol,
    hostIp,
    hostPort: fc.integer({min: 1, max: 65_535}),
  }),
  {maxLength: 4, selector: (p) => `${p.port}/${p.protocol}`},
)

/** Port map entries of odd shapes that must not disturb the well-formed ones. */
const noisePorts = fc.dictionary(
  fc.oneof(text, fc.integer({min: -5, max: 99_999}).map(String)),
  fc.oneof(
    fc.constant(null),
    fc.anything(),
    fc.array(
      fc.record(
        {HostIp: fc.oneof(text, fc.anything()), HostPort: fc.oneof(text, fc.integer().map(String), fc.anything())},
        {requiredKeys: []},
      ),
      {maxLength: 3},
    ),
  ),
  {maxKeys: 4},
)

const env = (record: Record<string, string>): Array<string | null | number> =>
  Object.entries(record).map(([k, v]) => `${k}=${v}`)

const options: fc.Arbitrary<AgentOptions> = fc.record({
  hostname: fc.oneof(fc.constant('node1'), text),
  ip: fc.option(fc.oneof(fc.constant('10.0.0.9'), text), {nil: undefined}),
  internal: fc.boolean(),
  explicit: fc.boolean(),
  tags: fc.array(text, {maxLength: 3}),
  network: fc.option(text, {nil: undefined}),
  cleanup: fc.constant(false),
  deregister: fc.constant('always' as const),
  retryAttempts: fc.constant(0),
  retryIntervalMs: fc.constant(1000),
})

const maybe = <T>(arbitrary: fc.Arbitrary<T>): fc.Arbitrary<T | null | undefined> =>
  fc.oneof({weight: 4, arbitrary}, fc.constant(null), fc.constant(undefined))

/** Inspect output with every field possibly missing, null or of an unexpected type. */
const inspect = fc
  .record({
    id: maybe(fc.oneof(fc.stringMatching(/^[\da-f]{64}$/), text)),
    name: maybe(text.map((t) => `/${t}`)),
    image: maybe(text),
    imageId: maybe(text),
    labels: maybe(fc.oneof(settings, fc.anything())),
    env: maybe(
      fc.oneof(
        settings.map((record) => env(record)),
        fc.anything(),
      ),
    ),
    published: publishedPorts,
    noise: noisePorts,
    runtime: fc.boolean(),
    networkMode: maybe(fc.constantFrom('default', 'bridge', 'host', 'none', 'container:x')),
    networks: maybe(fc.oneof(fc.dictionary(text, fc.record({IPAddress: text}, {requiredKeys: []})), fc.anything())),
    ipAddress: maybe(text),
    health: maybe(fc.oneof(fc.constantFrom('healthy', 'unhealthy', 'starting'), text)),
    paused: maybe(fc.boolean()),
    missingNetworkSettings: fc.boolean(),
  })
  .map((f) => {
    const ports: Record<string, unknown> = {...f.noise}
    for (const p of f.published) {
      ports[`${p.port}/${p.protocol}`] = [{HostIp: p.hostIp, HostPort: String(p.hostPort)}]
    }

    const container = {
      Id: f.id,
      Name: f.name,
      Image: f.imageId,
      State: {Paused: f.paused, Health: f.health === undefined ? undefined : {Status: f.health}},
      Config: {Image: f.image, Env: f.env, Labels: f.labels},
      // Docker fills PortBindings from -p and NetworkSettings.Ports once the container runs
      HostConfig: {NetworkMode: f.networkMode, PortBindings: f.runtime && !f.missingNetworkSettings ? {} : ports},
      NetworkSettings: f.missingNetworkSettings
        ? undefined
        : {IPAddress: f.ipAddress, Ports: f.runtime ? ports : null, Networks: f.networks},
    }
    return {container: container as unknown as Dockerode.ContainerInspectInfo, published: f.published}
  })

describe('planContainer on arbitrary inspect data', () => {
  it('never throws; every planned instance is valid; ids are unique in the container', () => {
    fc.assert(
      fc.property(inspect, options, ({container}, opts) => {
        const {services, warnings} = planContainerWithWarnings(container, opts, HOST)
        for (const {input} of services) expect(() => toInstance(input)).not.toThrow()
        const ids = services.map((s) => s.input.id)
        expect(new Set(ids).size).toBe(ids.length)
        for (const warning of warnings) expect(warning).not.toMatch(/[\n\r]/)
      }),
      RUNS,
    )
  })

  it('registers every well-formed published port, whatever the SERVICE_* metadata holds', () => {
    const plain = options.map((o) => ({...o, ip: undefined, internal: false, explicit: false}))
    fc.assert(
      fc.property(inspect, plain, ({container, published}, opts) => {
        const {services} = planContainerWithWarnings(container, opts, HOST)
        const planned = services.map(
          (s) => `${s.input.meta?.[PRIVATE_PORT_KEY]}/${s.input.tags?.includes('udp') ? 'udp' : 'tcp|sctp'}`,
        )
        for (const p of published) {
          const key = `${p.port}/${p.protocol === 'udp' ? 'udp' : 'tcp|sctp'}`
          expect(planned).toContain(key)
        }
      }),
      RUNS,
    )
  })

  it('keeps a meta key or says why it did not: SERVICE___PROTO__ would vanish into the prototype', () => {
    const labels = {SERVICE___PROTO__: 'x', SERVICE_CONSTRUCTOR: 'y'}
    const ports = {'80/tcp': [{HostIp: '', HostPort: '8080'}]}
    const c = {Name: '/w', Config: {Image: 'web', Labels: labels}, HostConfig: {}, NetworkSettings: {Ports: ports}}
    const plain = {...fc.sample(options, {numRuns: 1, seed: 1})[0]!, ip: undefined, internal: false, explicit: false}
    const {services, warnings} = planContainerWithWarnings(c as unknown as Dockerode.ContainerInspectInfo, plain, HOST)
    expect(Object.hasOwn(services[0]!.input.meta ?? {}, 'constructor')).toBe(true)
    expect(warnings.some((w) => w.includes('SERVICE___PROTO__ ignored'))).toBe(true)
  })

  it('gives every port its own id, whatever ids the SERVICE_*_ID settings repeat', () => {
    const port = fc.constantFrom(80, 443, 53)
    const id = fc.constantFrom('x', 'node1:w:443', 'node1:w:80:udp', 'x:443', 'x:53:udp')
    const scenario = fc.record({
      ports: fc.uniqueArray(fc.tuple(port, fc.constantFrom('tcp', 'udp')), {
        minLength: 1,
        selector: (p) => p.join('/'),
      }),
      ids: fc.dictionary(
        fc.oneof(
          port.map((p) => `SERVICE_${p}_ID`),
          fc.constant('SERVICE_ID'),
        ),
        id,
      ),
    })
    fc.assert(
      fc.property(scenario, ({ports, ids}) => {
        const bindings = Object.fromEntries(
          ports.map(([p, proto]) => [`${p}/${proto}`, [{HostIp: '', HostPort: String(p)}]]),
        )
        const c = {Name: '/w', Config: {Image: 'web', Labels: ids}, HostConfig: {}, NetworkSettings: {Ports: bindings}}
        const plain = {...fc.sample(options, {numRuns: 1, seed: 1})[0]!, hostname: 'node1', ip: undefined}
        const opts = {...plain, internal: false, explicit: false}
        const {services} = planContainerWithWarnings(c as unknown as Dockerode.ContainerInspectInfo, opts, HOST)
        expect(services).toHaveLength(ports.length)
        expect(new Set(services.map((s) => s.input.id)).size).toBe(ports.length)
      }),
      RUNS,
    )
  })
})
