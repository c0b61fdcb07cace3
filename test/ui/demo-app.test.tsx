import {stripVTControlCharacters} from 'node:util'
import {render} from 'ink-testing-library'
import {afterEach, describe, expect, it, vi} from 'vitest'

import {DemoFeed} from '../../src/lib/demo/runner.js'
import type {DemoEvent} from '../../src/lib/demo/types.js'
import {DemoApp} from '../../src/lib/ui/components/DemoApp.js'
import {demoReducer, INITIAL_DEMO_STATE} from '../../src/lib/ui/hooks/use-demo.js'
import {renderDemo} from '../../src/lib/ui/demo.js'
import {fakeTerminal} from '../helpers/fake-terminal.js'

// colours are part of what is tested; chalk decides its level when ink first loads
vi.hoisted(() => {
  process.env.FORCE_COLOR = '1'
})

const WIDTH = 100
const mounted: Array<{unmount(): void}> = []

afterEach(() => {
  for (const app of mounted.splice(0)) app.unmount()
})

const PLAN: DemoEvent = {
  type: 'plan',
  steps: [
    {id: 'register', title: 'Start 3 instances of "web" and register them'},
    {id: 'resolve', title: 'Resolve "web"'},
    {id: 'cleanup', title: 'Clean up'},
  ],
  dir: '/tmp/svc-demo-abc',
  backend: 'local:///tmp/svc-demo-abc',
}

const STEP_1: DemoEvent[] = [
  {type: 'step', index: 0, id: 'register', title: 'Start 3 instances of "web" and register them', shows: 'Shows one.'},
  {type: 'command', index: 0, text: 'svc register web --port 41001 --id web-1'},
  {type: 'output', index: 0, text: 'ID     PID\nweb-1  4242'},
]

function mount(feed: DemoFeed) {
  const app = render(<DemoApp feed={feed} width={WIDTH} />)
  mounted.push(app)
  const text = (): string => stripVTControlCharacters(app.lastFrame() ?? '')
  const showing = (needle: string) => vi.waitFor(() => expect(text()).toContain(needle), {timeout: 2000})
  return {...app, text, showing}
}

describe('the demo walkthrough', () => {
  it('lists the steps, marks the running one, and shows its explanation, commands and output', async () => {
    const feed = new DemoFeed()
    feed.push(PLAN, ...STEP_1, {type: 'progress', index: 0, text: '2 of 3 registered'})
    const app = mount(feed)
    await app.showing('2 of 3 registered')
    const lines = app.text().split('\n')
    expect(lines[0]).toBe('svc demo · a tour on a temporary local registry: no server, no Docker')
    expect(lines[1]).toBe('svc commands work on it meanwhile: export SVC_BACKEND=local:///tmp/svc-demo-abc')
    expect(lines[3]).toMatch(/^ [⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] 1 {2}Start 3 instances of "web" and register them$/)
    expect(lines[4]).toBe(' ○ 2  Resolve "web"')
    expect(lines[5]).toBe(' ○ 3  Clean up')
    expect(lines.slice(7)).toEqual([
      '1 · Start 3 instances of "web" and register them',
      '  Shows one.',
      '  $ svc register web --port 41001 --id web-1',
      '    ID     PID',
      '    web-1  4242',
      '    2 of 3 registered',
    ])
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(WIDTH)
  })

  it('ticks off done steps with their outcome, says when it pauses, and ends with the result', async () => {
    const feed = new DemoFeed()
    feed.push(PLAN, ...STEP_1)
    const app = mount(feed)
    await app.showing('web-1  4242')
    feed.push(
      {type: 'done', index: 0, id: 'register', ms: 900, result: {summary: '3 instances registered', data: {}}},
      {type: 'pause', ms: 1500},
    )
    await app.showing('next step in 1.5s…')
    expect(app.text()).toContain(' ✓ 1  Start 3 instances of "web" and register them\n      3 instances registered\n')
    const done = app
      .lastFrame()!
      .split('\n')
      .find((l) => l.includes('✓'))!
    expect(done).toContain('\u001B[32m')

    feed.push(
      {type: 'step', index: 1, id: 'resolve', title: 'Resolve "web"', shows: 'Shows two.'},
      {type: 'done', index: 1, id: 'resolve', ms: 5, result: {summary: '3 healthy', data: {}}},
      {type: 'step', index: 2, id: 'cleanup', title: 'Clean up', shows: 'Shows three.'},
      {type: 'output', index: 2, text: 'temp dir:   removed'},
      {type: 'done', index: 2, id: 'cleanup', ms: 5, result: {summary: 'nothing left', data: {}}},
      {type: 'finished', ok: true, ms: 4200},
    )
    await app.showing('✓ demo finished in 4.2s: every step as expected, nothing left behind')
    const text = app.text()
    expect(text).toContain(' ✓ 2  Resolve "web"\n      3 healthy\n ✓ 3  Clean up\n      nothing left\n')
    // the last step's panel stays, without the earlier steps' output
    expect(text).toContain('3 · Clean up\n  Shows three.\n    temp dir:   removed')
    expect(text).not.toContain('web-1  4242')
    expect(text).not.toContain('next step in')
    expect(text).not.toMatch(/[○⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]/)
  })

  it('marks a failed step in red with its error and the steps it skipped', async () => {
    const feed = new DemoFeed()
    feed.push(
      PLAN,
      ...STEP_1,
      {type: 'failed', index: 0, id: 'register', ms: 10, error: 'instance web-2 exited (1) before registering'},
      {type: 'step', index: 2, id: 'cleanup', title: 'Clean up', shows: 'Shows three.'},
      {type: 'done', index: 2, id: 'cleanup', ms: 5, result: {summary: 'nothing left', data: {}}},
      {
        type: 'finished',
        ok: false,
        ms: 300,
        error: 'step 1 "Start 3 instances of "web" and register them" failed: instance web-2 exited',
      },
    )
    const app = mount(feed)
    await app.showing('✗ step 1')
    const text = app.text()
    expect(text).toContain(
      ' ✗ 1  Start 3 instances of "web" and register them\n      instance web-2 exited (1) before registering',
    )
    expect(text).toContain(' - 2  Resolve "web" (skipped)')
    expect(text).toContain(' ✓ 3  Clean up')
    const error = app
      .lastFrame()!
      .split('\n')
      .find((l) => l.includes('instance web-2 exited (1)'))!
    expect(error).toContain('\u001B[31m')
  })

  it('folds events into state without a renderer', () => {
    const state = [PLAN, ...STEP_1].reduce((s, e) => demoReducer(s, e), INITIAL_DEMO_STATE)
    expect(state.current).toBe(0)
    expect(state.steps.map((s) => s.state)).toEqual(['running', 'pending', 'pending'])
    expect(state.lines).toEqual([
      {kind: 'command', text: 'svc register web --port 41001 --id web-1'},
      {kind: 'output', text: 'ID     PID'},
      {kind: 'output', text: 'web-1  4242'},
    ])
    const next = demoReducer(state, {type: 'step', index: 1, id: 'resolve', title: 'Resolve "web"', shows: 'Two.'})
    expect(next.lines).toEqual([])
    expect(next.steps.map((s) => s.state)).toEqual(['running', 'running', 'pending'])
  })

  it('mounts on a terminal and resolves once the tour has finished', async () => {
    const feed = new DemoFeed()
    const {stdin, stdout} = fakeTerminal(WIDTH)
    const view = renderDemo(feed, {
      stdin: stdin as unknown as NodeJS.ReadStream,
      stdout: stdout as unknown as NodeJS.WriteStream,
      patchConsole: false,
    })
    feed.push(PLAN, ...STEP_1, {type: 'finished', ok: true, ms: 10})
    await view
    expect(stripVTControlCharacters(stdout.output)).toContain('✓ demo finished in 10ms')
    // it never reads keys: Ctrl-C stays a signal for the command, which cleans up
    expect(stdin.rawMode).toBe(false)
  })
})
