import {stripVTControlCharacters} from 'node:util'
import {render} from 'ink-testing-library'
import type {ReactElement} from 'react'
import {afterEach, describe, expect, it, vi} from 'vitest'

import type {
  ClusterInfo,
  Health,
  Registry,
  RegistrationHandle,
  Removal,
  ServiceInstance,
  ServiceSummary,
  WatchEvent,
  WatchOptions,
} from '../../src/lib/registry/types.js'
import {WatchApp, type WatchAppProps} from '../../src/lib/ui/components/WatchApp.js'
import {INITIAL_WATCH_STATE, watchReducer} from '../../src/lib/ui/hooks/use-registry-watch.js'
import {renderWatchTree} from '../../src/lib/ui/watch-tree.js'
import {fakeTerminal} from '../helpers/fake-terminal.js'

// colours are part of what is tested; chalk decides its level when ink first loads
vi.hoisted(() => {
  process.env.FORCE_COLOR = '1'
})

const WIDTH = 100
const BOLD = '\u001B[1m'
const KEY = {up: '\u001B[A', down: '\u001B[B', left: '\u001B[D', enter: '\r', escape: '\u001B', ctrlC: '\u0003'}

function instance(service: string, id: string, port: number, health: Health = 'passing', tags: string[] = []) {
  return {service, id, address: '10.0.0.5', port, tags, meta: {}, health} satisfies ServiceInstance
}

/** One subscriber's queue: events pushed by the test, or an error that ends the stream. */
class Subscription {
  private readonly queue: Array<WatchEvent | Error> = []
  private wake?: () => void
  ended = false

  push(item: WatchEvent | Error): void {
    this.queue.push(item)
    this.wake?.()
  }

  end(): void {
    this.ended = true
    this.wake?.()
  }

  async *events(): AsyncGenerator<WatchEvent> {
    while (!this.ended) {
      const item = this.queue.shift()
      if (item instanceof Error) throw item
      if (item) yield item
      else
        await new Promise<void>((resolve) => {
          this.wake = resolve
        })
    }
  }
}

/** A Registry whose watch() yields what the test pushes; it keeps the instances so a new subscription gets a snapshot. */
class FakeRegistry implements Registry {
  readonly kind = 'zk'
  readonly nativeChecks = false
  readonly description = 'zk://127.0.0.1:2181/svc'
  readonly instances = new Map<string, ServiceInstance>()
  readonly subscriptions = new Set<Subscription>()
  subscribed = 0
  clusterAnswer: ClusterInfo | Error = {
    backend: 'zk',
    members: [
      {name: '127.0.0.1:2181', address: '127.0.0.1:2181', role: 'follower', reachable: true},
      {name: '127.0.0.1:2182', address: '127.0.0.1:2182', role: 'leader', reachable: true},
      {name: '127.0.0.1:2183', address: '127.0.0.1:2183', role: 'unknown', reachable: false},
    ],
    leader: '127.0.0.1:2182',
  }

  deregisterAnswer: boolean | Error = true
  readonly deregistered: Array<[string, string]> = []

  constructor(instances: ServiceInstance[] = []) {
    for (const i of instances) this.instances.set(`${i.service}/${i.id}`, i)
  }

  async *watch(service?: string, opts: WatchOptions = {}): AsyncGenerator<WatchEvent> {
    this.subscribed++
    const sub = new Subscription()
    const onAbort = (): void => sub.end()
    opts.signal?.addEventListener('abort', onAbort, {once: true})
    this.subscriptions.add(sub)
    try {
      const instances = [...this.instances.values()].filter((i) => service === undefined || i.service === service)
      sub.push({type: 'snapshot', instances})
      yield* sub.events()
    } finally {
      opts.signal?.removeEventListener('abort', onAbort)
      this.subscriptions.delete(sub)
    }
  }

  emit(event: WatchEvent): void {
    if (event.type === 'added' || event.type === 'changed')
      this.instances.set(`${event.instance.service}/${event.instance.id}`, event.instance)
    if (event.type === 'removed') this.instances.delete(`${event.instance.service}/${event.instance.id}`)
    for (const sub of this.subscriptions) sub.push(event)
  }

  fail(error: Error): void {
    for (const sub of this.subscriptions) sub.push(error)
  }

  async deregister(service: string, id: string): Promise<Removal> {
    this.deregistered.push([service, id])
    if (this.deregisterAnswer instanceof Error) throw this.deregisterAnswer
    return {removed: this.deregisterAnswer && this.instances.delete(`${service}/${id}`)}
  }

  async cluster(): Promise<ClusterInfo> {
    if (this.clusterAnswer instanceof Error) throw this.clusterAnswer
    return this.clusterAnswer
  }

  async ping(): Promise<void> {}
  async register(): Promise<RegistrationHandle> {
    throw new Error('not in this fake')
  }

  async listServices(): Promise<ServiceSummary[]> {
    return []
  }

  async listInstances(): Promise<ServiceInstance[]> {
    return []
  }

  async close(): Promise<void> {}
}

function demoRegistry(): FakeRegistry {
  return new FakeRegistry([
    instance('web', 'web-1', 8080, 'passing', ['v1', 'canary']),
    instance('web', 'web-2', 8081, 'warning'),
    instance('api', 'api-1', 9000, 'critical', ['v2']),
    instance('cache', 'cache-1', 6379, 'unknown'),
  ])
}

const mounted: Array<{unmount(): void}> = []

function mount(node: ReactElement) {
  const app = render(node)
  mounted.push(app)
  const text = (): string => stripVTControlCharacters(app.lastFrame() ?? '')
  const lines = (): string[] => text().split('\n')
  /** The selected line (marked ›), without the padding that fills its row. */
  const selection = (): string | undefined =>
    lines()
      .find((l) => l.startsWith('›'))
      ?.trimEnd()
  /** Types keys one read at a time, as a person does, each after the frame of the one before. */
  const press = async (...keys: string[]): Promise<void> => {
    for (const key of keys) {
      const before = app.frames.length
      app.stdin.write(key)
      // keys that change nothing draw nothing: do not wait long for those
      await vi
        .waitFor(() => expect(app.frames.length).toBeGreaterThan(before), {timeout: 500, interval: 5})
        .catch(() => {})
    }
  }

  return {...app, text, lines, selection, press}
}

/** The line of the last frame that contains `text`, with its escape codes. */
function rawLine(app: {lastFrame(): string | undefined}, text: string): string | undefined {
  return app
    .lastFrame()
    ?.split('\n')
    .find((line) => line.includes(text))
}

/** Mounts the app on a registry and waits for the first snapshot (input is live by then). */
async function mountApp(registry: FakeRegistry, props: Partial<WatchAppProps> = {}) {
  const app = mount(
    <WatchApp
      backend={registry.description}
      registry={registry}
      retry={{initialMs: 20, maxMs: 40}}
      width={WIDTH}
      {...props}
    />,
  )
  await vi.waitFor(() => expect(app.text()).toMatch(/ connected /))
  await vi.waitFor(() => expect(app.text()).toContain('leader'))
  return app
}

afterEach(() => {
  for (const app of mounted.splice(0)) app.unmount()
})

describe('WatchApp', () => {
  it('renders header, cluster members with the leader, and services sorted with their instances', async () => {
    const app = await mountApp(demoRegistry())
    const lines = app.lines()
    expect(lines[0]).toBe('svc watch  zk://127.0.0.1:2181/svc  connected · 3 services, 4 instances')
    expect(lines[1]).toBe('cluster  127.0.0.1:2181 follower · 127.0.0.1:2182 leader · 127.0.0.1:2183 unreachable')
    const tree = lines.slice(3, 10).map((l) => l.trimEnd())
    expect(tree).toEqual([
      '›  ▾ api  1 instance: 1 critical',
      '       api-1    10.0.0.5:9000  critical  v2',
      '   ▾ cache  1 instance: 1 unknown',
      '       cache-1  10.0.0.5:6379  unknown',
      '   ▾ web  2 instances: 1 passing, 1 warning',
      '       web-1    10.0.0.5:8080  passing   v1,canary',
      '       web-2    10.0.0.5:8081  warning',
    ])
    expect(lines.at(-1)).toBe('↑↓/jk move · enter/space expand · / filter · d deregister · q quit')
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(WIDTH)

    // health in colour: passing green, warning yellow, critical red, unknown grey
    const raw = app.lastFrame() ?? ''
    expect(raw).toContain('\u001B[32mpassing ')
    expect(raw).toContain('\u001B[33mwarning ')
    expect(raw).toContain('\u001B[31mcritical')
    expect(raw).toContain('\u001B[90munknown ')
  })

  it('updates live on added, changed and removed, and highlights the change for a moment', async () => {
    const registry = demoRegistry()
    const app = await mountApp(registry, {highlightMs: 150})

    registry.emit({type: 'added', instance: instance('web', 'web-3', 8082, 'critical')})
    await vi.waitFor(() => expect(app.text()).toMatch(/^ \+ {5}web-3 +10\.0\.0\.5:8082 +critical$/m))
    expect(app.text()).toContain('▾ web  3 instances: 1 passing, 1 warning, 1 critical')
    // the changed line is bold
    expect(app.lastFrame()).toContain(`${BOLD} +     web-3`)
    await vi.waitFor(() => expect(app.text()).toMatch(/^ {7}web-3 +10\.0\.0\.5:8082 +critical$/m))
    expect(rawLine(app, 'web-3')).not.toContain(BOLD)

    const previous = instance('web', 'web-2', 8081, 'warning')
    registry.emit({type: 'changed', instance: instance('web', 'web-2', 8081, 'passing', ['v3']), previous})
    await vi.waitFor(() => expect(app.text()).toMatch(/^ ~ {5}web-2 +10\.0\.0\.5:8081 +passing +v3$/m))

    registry.emit({type: 'removed', instance: instance('api', 'api-1', 9000, 'critical', ['v2'])})
    await vi.waitFor(() => expect(app.text()).not.toContain('api-1'))
    // a removed instance has no line left: its service is gone too, the selection moves to what took its place
    expect(app.text()).not.toContain('▾ api')
    expect(app.selection()).toBe('›  ▾ cache  1 instance: 1 unknown')

    registry.emit({type: 'removed', instance: instance('web', 'web-1', 8080, 'passing', ['v1', 'canary'])})
    await vi.waitFor(() =>
      expect(app.text()).toMatch(/^ - ▾ web {2}2 instances: 1 passing, 1 critical {2}\(web-1 removed\)$/m),
    )
    await vi.waitFor(() => expect(app.text()).not.toContain('removed'))

    // a folded service is marked in place of its changed instance
    await app.press('G', KEY.enter)
    expect(app.selection()).toMatch(/^› {2}▸ web/)
    registry.emit({type: 'added', instance: instance('web', 'web-4', 8084)})
    await vi.waitFor(() => expect(app.selection()).toMatch(/^›\+ ▸ web {2}3 instances/))
  })

  it('moves the selection with j/k and the arrows, and folds services with enter, space and left', async () => {
    const app = await mountApp(demoRegistry())
    expect(app.selection()).toMatch(/^› {2}▾ api/)
    await app.press('j')
    expect(app.selection()).toMatch(/^› {6}api-1/)
    await app.press(KEY.down, KEY.down)
    expect(app.selection()).toMatch(/^› {6}cache-1/)
    await app.press('k', KEY.up)
    expect(app.selection()).toMatch(/^› {6}api-1/)
    await app.press('k', 'k', 'k')
    expect(app.selection()).toMatch(/^› {2}▾ api/)

    await app.press(KEY.enter)
    expect(app.selection()).toBe('›  ▸ api  1 instance: 1 critical')
    expect(app.text()).not.toContain('api-1')
    await app.press('j')
    expect(app.selection()).toMatch(/^› {2}▾ cache/)
    await app.press('k', ' ')
    expect(app.text()).toContain('api-1')

    // on an instance, enter (or left) folds its service and selects it
    await app.press('G')
    expect(app.selection()).toMatch(/^› {6}web-2/)
    await app.press(KEY.left)
    expect(app.selection()).toMatch(/^› {2}▸ web/)
    await app.press('g')
    expect(app.selection()).toMatch(/^› {2}▾ api/)
  })

  it('takes keys that arrive in one read one by one (tmux send-keys, a paste)', async () => {
    const registry = demoRegistry()
    const app = await mountApp(registry)
    await app.press('jjj')
    expect(app.selection()).toMatch(/^› {6}cache-1/)
    await app.press('/web-1\r')
    expect(app.text()).toMatch(/^filter "web-1" · esc clears$/m)
    await app.press('jdy')
    await vi.waitFor(() => expect(registry.deregistered).toEqual([['web', 'web-1']]))
  })

  it('filters by name: / starts it, enter keeps it, esc clears it', async () => {
    const app = await mountApp(demoRegistry())
    await app.press('/', 'w', 'e')
    expect(app.text()).toMatch(/^\/we {3}enter keeps · esc clears$/m)
    expect(app.text()).toContain('web-1')
    expect(app.text()).not.toContain('api')
    expect(app.text()).not.toContain('cache')
    await app.press('b', '-', '2', KEY.enter)
    // the filter matches instance ids too
    expect(app.text()).toContain('web-2')
    expect(app.text()).not.toContain('web-1')
    expect(app.text()).toMatch(/^filter "web-2" · esc clears$/m)
    // kept: keys navigate again
    await app.press('j')
    expect(app.selection()).toMatch(/^› {6}web-2/)

    await app.press('/', '\u007F', '\u007F', '\u007F', '\u007F', '\u007F', 'x', 'y', 'z', KEY.enter)
    expect(app.text()).toContain('nothing matches "xyz"')
    await app.press(KEY.escape)
    await vi.waitFor(() => expect(app.text()).toContain('api-1'))
    expect(app.text()).not.toContain('esc clears')
  })

  it('asks before deregistering: n keeps the instance, y deregisters it and reports the result', async () => {
    const registry = demoRegistry()
    const app = await mountApp(registry)
    await app.press('d')
    expect(app.text()).toContain('select an instance to deregister')
    await app.press('G', 'd')
    expect(app.text()).toMatch(/^deregister web web-2\? y\/n$/m)
    await app.press('n')
    expect(app.text()).toMatch(/^kept web web-2$/m)
    expect(registry.deregistered).toEqual([])

    await app.press('d', 'y')
    await vi.waitFor(() => expect(app.text()).toMatch(/^deregistered web web-2$/m))
    expect(registry.deregistered).toEqual([['web', 'web-2']])

    registry.deregisterAnswer = new Error('permission denied')
    await app.press('k', 'd', 'y')
    await vi.waitFor(() => expect(app.text()).toMatch(/^could not deregister web web-1: permission denied$/m))
    registry.deregisterAnswer = false
    await app.press('d', 'y')
    await vi.waitFor(() => expect(app.text()).toMatch(/^web web-1 was not registered$/m))
  })

  it('shows a failing watch in the header, re-subscribes, and shows status changes and cluster errors', async () => {
    const registry = demoRegistry()
    registry.clusterAnswer = new Error('srvr: connection refused')
    const app = mount(
      <WatchApp
        backend={registry.description}
        clusterIntervalMs={30}
        registry={registry}
        retry={{initialMs: 100, maxMs: 100}}
        width={WIDTH}
      />,
    )
    await vi.waitFor(() => expect(app.lines()[1]).toBe('cluster  error: srvr: connection refused'))
    await vi.waitFor(() => expect(app.text()).toContain('web-1'))

    registry.fail(new Error('ECONNRESET: socket hang up'))
    await vi.waitFor(() =>
      expect(app.lines()[0]).toBe(
        'svc watch  zk://127.0.0.1:2181/svc  reconnecting · error: ECONNRESET: socket hang up',
      ),
    )
    // the last known tree stays on screen while it reconnects
    expect(app.text()).toContain('web-1')
    await vi.waitFor(() => expect(app.lines()[0]).toMatch(/ connected · 3 services, 4 instances$/))
    expect(registry.subscribed).toBe(2)

    registry.emit({type: 'status', state: 'session-lost', detail: 'session expired'})
    await vi.waitFor(() => expect(app.lines()[0]).toMatch(/ session lost \(session expired\) · 3 services/))
    registry.emit({type: 'status', state: 'reconnecting', detail: 'trying 127.0.0.1:2182'})
    await vi.waitFor(() => expect(app.lines()[0]).toMatch(/ reconnecting \(trying 127\.0\.0\.1:2182\)/))

    registry.clusterAnswer = {
      backend: 'zk',
      members: [{name: '127.0.0.1:2181', address: '127.0.0.1:2181', role: 'leader', reachable: true}],
      leader: '127.0.0.1:2181',
    }
    await vi.waitFor(() => expect(app.lines()[1]).toBe('cluster  127.0.0.1:2181 leader'))
  })

  it('quits on q and on Ctrl-C, and ends the watch', async () => {
    for (const key of ['q', KEY.ctrlC]) {
      const registry = demoRegistry()
      const onQuit = vi.fn()
      const app = await mountApp(registry, {onQuit})
      expect(registry.subscriptions.size).toBe(1)
      await app.press(key)
      expect(onQuit).toHaveBeenCalledTimes(1)
      await vi.waitFor(() => expect(registry.subscriptions.size).toBe(0))
    }
  })

  it('scrolls to keep the selection visible when the tree is taller than the terminal', async () => {
    const many = Array.from({length: 30}, (_, i) => instance('svc', `svc-${String(i).padStart(2, '0')}`, 1000 + i))
    const app = await mountApp(new FakeRegistry(many), {height: 15})
    expect(app.lines().length).toBeLessThan(15)
    expect(app.text()).toContain('svc-06')
    expect(app.text()).not.toContain('svc-07')
    expect(app.lines().at(-1)).toMatch(/q quit {2}1\/31$/)
    await app.press(...Array.from({length: 12}, () => 'j'))
    expect(app.selection()).toMatch(/svc-11/)
    expect(app.lines()[3]).toMatch(/^ +svc-04 /)
    expect(app.text()).not.toContain('svc-03')
    expect(app.lines().at(-1)).toMatch(/13\/31$/)
    await app.press('G')
    expect(app.selection()).toMatch(/svc-29/)
    expect(app.lines().at(-4)?.trimEnd()).toMatch(/svc-29/)
    await app.press('g')
    expect(app.text()).toContain('▾ svc')
  })

  it('cuts long lines to the width', async () => {
    const registry = new FakeRegistry([instance('s'.repeat(80), 'i'.repeat(70), 1, 'passing', ['t'.repeat(50)])])
    const app = await mountApp(registry, {width: 60})
    for (const line of app.lines()) expect(line.length).toBeLessThanOrEqual(60)
    expect(app.text()).toMatch(/i+…i+ +10\.0\.0\.5:1 +passing +t+…$/m)
  })

  it('keeps the health whole and different ids apart on a narrow terminal', async () => {
    const long = 'web:some-long-host-name.in-a-long-domain.example.internal:80'
    const registry = new FakeRegistry([
      instance('web', `${long}81`, 8081, 'critical'),
      instance('web', `${long}82`, 8082, 'critical'),
    ])
    const app = await mountApp(registry, {width: 60})
    const rows = app.lines().filter((l) => l.includes('critical') && !l.includes('instances'))
    expect(rows).toHaveLength(2)
    expect(rows[0]).not.toBe(rows[1])
    expect(rows[0]).toMatch(/81 .*critical/)
  })

  it('says what is missing: a service without instances, before the first snapshot', async () => {
    const registry = demoRegistry()
    const app = await mountApp(registry, {service: 'nope'})
    expect(app.lines()[0]).toBe('svc watch nope  zk://127.0.0.1:2181/svc  connected · 0 services, 0 instances')
    expect(app.text()).toContain('no instance of nope is registered')
    expect(registry.subscribed).toBe(1)
  })
})

describe('watchReducer', () => {
  it('keeps services sorted, drops empty ones, and expires only its own highlight', () => {
    let state = watchReducer(INITIAL_WATCH_STATE, {
      type: 'event',
      event: {type: 'snapshot', instances: [instance('a', 'z', 2), instance('a', 'y', 1)]},
      at: 1,
    })
    expect(state.connection).toBe('connected')
    expect(state.services.get('a')?.map((i) => i.id)).toEqual(['y', 'z'])
    state = watchReducer(state, {type: 'event', event: {type: 'removed', instance: instance('a', 'z', 2)}, at: 2})
    state = watchReducer(state, {type: 'event', event: {type: 'removed', instance: instance('a', 'y', 1)}, at: 3})
    expect(state.services.has('a')).toBe(false)
    expect(watchReducer(state, {type: 'expire', at: 2})).toBe(state)
    expect(watchReducer(state, {type: 'expire', at: 3}).lastChange).toBeUndefined()
  })
})

/** A stream pair ink accepts as a terminal. */
describe('renderWatchTree', () => {
  it('resolves after q with raw mode off and the watch ended, and after an abort', async () => {
    const registry = demoRegistry()
    const {stdin, stdout} = fakeTerminal(WIDTH)
    const streams = {
      stdin: stdin as unknown as NodeJS.ReadStream,
      stdout: stdout as unknown as NodeJS.WriteStream,
      stderr: stdout as unknown as NodeJS.WriteStream,
    }
    // vitest's console has no Console constructor for ink to patch with
    const view = renderWatchTree(registry, {backend: registry.description, ...streams, patchConsole: false})
    await vi.waitFor(() => {
      expect(stdin.rawMode).toBe(true)
      expect(stripVTControlCharacters(stdout.output)).toContain('web-2')
    })
    stdin.press('q')
    await view
    expect(stdin.rawMode).toBe(false)
    await vi.waitFor(() => expect(registry.subscriptions.size).toBe(0))

    const controller = new AbortController()
    const second = fakeTerminal(WIDTH)
    const aborted = renderWatchTree(registry, {
      backend: 'b',
      service: 'web',
      signal: controller.signal,
      stdin: second.stdin as unknown as NodeJS.ReadStream,
      stdout: second.stdout as unknown as NodeJS.WriteStream,
      stderr: second.stdout as unknown as NodeJS.WriteStream,
      patchConsole: false,
    })
    await vi.waitFor(() => expect(registry.subscriptions.size).toBe(1))
    controller.abort()
    await aborted
    await vi.waitFor(() => expect(registry.subscriptions.size).toBe(0))
  })
})
