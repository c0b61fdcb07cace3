import {stripVTControlCharacters} from 'node:util'
import {render} from 'ink-testing-library'
import type {ReactElement} from 'react'
import {afterEach, describe, expect, it, vi} from 'vitest'

import {formatAgentEvent, formatClock} from '../../src/lib/docker/format.js'
import type {AgentEvent} from '../../src/lib/docker/types.js'
import {renderAgentView} from '../../src/lib/ui/agent-view.js'
import {AgentApp} from '../../src/lib/ui/components/AgentApp.js'
import {ContainerTable} from '../../src/lib/ui/components/ContainerTable.js'
import {EventLog} from '../../src/lib/ui/components/EventLog.js'
import {container, FakeAgent, instance} from '../helpers/fake-agent.js'
import {fakeTerminal} from '../helpers/fake-terminal.js'

const WIDTH = 100
const mounted: Array<{unmount(): void}> = []

function mount(node: ReactElement) {
  const app = render(node)
  mounted.push(app)
  return {...app, text: () => stripVTControlCharacters(app.lastFrame() ?? '')}
}

afterEach(() => {
  for (const app of mounted.splice(0)) app.unmount()
})

function demoAgent(): FakeAgent {
  const agent = new FakeAgent({
    backend: 'consul://127.0.0.1:8500',
    containers: [
      container('web-1', [instance('web', 32_768), instance('web-admin', 32_769, 'warning')]),
      container('redis', [instance('redis', 6379, 'critical')], 'paused'),
      container('batch', [], 'stopped'),
    ],
  })
  agent.emit({type: 'backend', state: 'connected', detail: 'consul://127.0.0.1:8500'})
  agent.emit({type: 'docker', state: 'connected', detail: 'following container events'})
  agent.emit({type: 'registered', instance: instance('web', 32_768), container: 'web-1'})
  return agent
}

describe('AgentApp', () => {
  it('renders header, containers with their services, and events at a fixed width', () => {
    const agent = demoAgent()
    const {text} = mount(<AgentApp source={agent} width={WIDTH} />)
    const frame = text()
    const lines = frame.split('\n')

    expect(lines[0]).toBe('svc agent  backend consul://127.0.0.1:8500 connected')
    expect(lines[1]).toBe('docker connected · 3 containers (1 running) · 3 instances: 1 passing, 1 warning, 1 critical')
    expect(frame).toMatch(/^CONTAINER +STATE +SERVICE +ADDRESS +HEALTH$/m)
    expect(frame).toMatch(/^web-1 +running +web +10\.0\.0\.5:32768 +passing$/m)
    expect(frame).toMatch(/^ +web-admin +10\.0\.0\.5:32769 +warning$/m)
    expect(frame).toMatch(/^redis +paused +redis +10\.0\.0\.5:6379 +critical$/m)
    expect(frame).toMatch(/^batch +stopped +-$/m)
    expect(frame).toContain(
      `${formatClock(agent.state.events[2]!.ts)}  registered web host:web:32768 at 10.0.0.5:32768`,
    )
    expect(lines.at(-1)).toBe('q quit')
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(WIDTH)
  })

  it('redraws when the source emits', async () => {
    const agent = demoAgent()
    const {text} = mount(<AgentApp refreshMs={10} source={agent} width={WIDTH} />)
    expect(text()).not.toContain('api-1')

    agent.state.containers.push(container('api-1', [instance('api', 8080)]))
    agent.state.docker = 'reconnecting'
    agent.emit({type: 'registered', instance: instance('api', 8080), container: 'api-1'})
    agent.emit({type: 'backend', state: 'lost', detail: 'session expired'})

    await vi.waitFor(() => {
      expect(text()).toMatch(/^api-1 +running +api +10\.0\.0\.5:8080 +passing$/m)
    })
    const frame = text()
    expect(frame).toContain('svc agent  backend consul://127.0.0.1:8500 lost')
    expect(frame).toContain('docker reconnecting · 4 containers')
    expect(frame).toMatch(/\d\d:\d\d:\d\d {2}backend lost: session expired$/m)
  })

  it('throttles redraws: a burst of events makes few frames', async () => {
    const agent = demoAgent()
    const {frames, text} = mount(<AgentApp refreshMs={50} source={agent} width={WIDTH} />)
    await vi.waitFor(() => expect(frames.length).toBeGreaterThan(0))
    const before = frames.length
    for (let i = 0; i < 200; i++) agent.emit({type: 'event-lag', ms: i})
    agent.emit({type: 'error', message: 'last one'})
    await vi.waitFor(() => expect(text()).toContain('error: last one'))
    expect(frames.length - before).toBeLessThanOrEqual(3)
  })

  it('quits on q and on Ctrl-C', async () => {
    for (const key of ['q', '\u0003']) {
      const agent = demoAgent()
      const onQuit = vi.fn()
      const {stdin} = mount(<AgentApp onQuit={onQuit} source={agent} width={WIDTH} />)
      // useInput subscribes in an effect, after the first frame
      await vi.waitFor(() => {
        stdin.write(key)
        expect(onQuit).toHaveBeenCalledTimes(1)
      })
      expect(agent.listenerCount).toBe(0)
    }
  })

  it('ignores other keys', async () => {
    const onQuit = vi.fn()
    const {stdin} = mount(<AgentApp onQuit={onQuit} source={demoAgent()} width={WIDTH} />)
    await new Promise((resolve) => {
      setTimeout(resolve, 20)
    })
    stdin.write('x')
    stdin.write('Q')
    await new Promise((resolve) => {
      setTimeout(resolve, 20)
    })
    expect(onQuit).not.toHaveBeenCalled()
  })

  it('truncates long lines to the width', () => {
    const agent = new FakeAgent({
      backend: `zk://${'very-long-host-name.example.com:2181,'.repeat(5)}x:2181/services`,
      containers: [container('c'.repeat(60), [instance('s'.repeat(60), 1, 'passing', 'fd00::1234:5678:9abc')])],
    })
    agent.emit({type: 'error', message: 'e'.repeat(300)})
    const {text} = mount(<AgentApp source={agent} width={60} />)
    const lines = text().split('\n')
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(60)
    expect(lines[0]).toMatch(/…$/)
    expect(text()).toContain('c'.repeat(27) + '…')
  })
})

describe('ContainerTable', () => {
  it('says when there is nothing yet, and summarises rows beyond maxRows', () => {
    expect(mount(<ContainerTable containers={[]} />).text()).toBe('no containers yet')
    const many = Array.from({length: 8}, (_, i) => container(`c${i}`, [instance(`s${i}`, 1000 + i)]))
    const lines = mount(<ContainerTable containers={many} maxRows={4} />)
      .text()
      .split('\n')
    expect(lines).toHaveLength(5)
    expect(lines[4]).toBe('… 5 more')
  })

  it('brackets IPv6 addresses', () => {
    const text = mount(
      <ContainerTable containers={[container('v6', [instance('api', 80, 'unknown', 'fd00::1')])]} />,
    ).text()
    expect(text).toMatch(/^v6 +running +api +\[fd00::1\]:80 +unknown$/m)
  })
})

describe('EventLog', () => {
  it('shows the last events, newest last, without event-lag reports', () => {
    const agent = new FakeAgent()
    const events: AgentEvent[] = []
    for (let i = 0; i < 15; i++) {
      events.push(agent.emit({type: 'error', message: `problem ${i}`}), agent.emit({type: 'event-lag', ms: 5}))
    }

    const lines = mount(<EventLog events={events} limit={10} />)
      .text()
      .split('\n')
    expect(lines[0]).toBe('EVENTS')
    expect(lines.slice(1)).toEqual(
      events
        .filter((e) => e.type === 'error')
        .slice(-10)
        .map((e) => `${formatClock(e.ts)}  ${formatAgentEvent(e)}`),
    )
    expect(lines.at(-1)).toMatch(/error: problem 14$/)
  })

  it('says when there are no events yet', () => {
    expect(mount(<EventLog events={[]} />).text()).toBe('EVENTS\nno events yet')
  })
})

/** A stream pair ink accepts as a terminal. */
describe('renderAgentView', () => {
  it('resolves after q with raw mode off again, and after an abort', async () => {
    const {stdin, stdout} = fakeTerminal(WIDTH)
    const agent = demoAgent()
    const view = renderAgentView(agent, {
      backend: 'consul://127.0.0.1:8500',
      stdin: stdin as unknown as NodeJS.ReadStream,
      stdout: stdout as unknown as NodeJS.WriteStream,
      stderr: stdout as unknown as NodeJS.WriteStream,
      // vitest's console has no Console constructor for ink to patch with
      patchConsole: false,
    })
    await vi.waitFor(() => {
      expect(stdin.rawMode).toBe(true)
      expect(stripVTControlCharacters(stdout.output)).toContain('svc agent  backend consul://127.0.0.1:8500')
    })
    stdin.press('q')
    await view
    expect(stdin.rawMode).toBe(false)
    expect(agent.listenerCount).toBe(0)

    const controller = new AbortController()
    const second = fakeTerminal(WIDTH)
    const aborted = renderAgentView(agent, {
      backend: 'b',
      signal: controller.signal,
      stdin: second.stdin as unknown as NodeJS.ReadStream,
      stdout: second.stdout as unknown as NodeJS.WriteStream,
      stderr: second.stdout as unknown as NodeJS.WriteStream,
      patchConsole: false,
    })
    await vi.waitFor(() => expect(agent.listenerCount).toBe(1))
    controller.abort()
    await aborted
    expect(agent.listenerCount).toBe(0)
  })
})
