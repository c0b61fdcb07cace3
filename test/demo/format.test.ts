import {describe, expect, it} from 'vitest'

import {jsonRenderer, plainRenderer, spreadChart, spreadText, wrap} from '../../src/lib/demo/format.js'
import type {DemoEvent} from '../../src/lib/demo/types.js'

const PLAN: DemoEvent = {
  type: 'plan',
  steps: [
    {id: 'register', title: 'Start'},
    {id: 'cleanup', title: 'Clean up'},
  ],
  dir: '/tmp/svc-demo-x',
  backend: 'local:///tmp/svc-demo-x',
}

const RUN: DemoEvent[] = [
  PLAN,
  {type: 'step', index: 0, id: 'register', title: 'Start', shows: 'What it shows.'},
  {type: 'command', index: 0, text: 'svc register web --port 1234'},
  {type: 'progress', index: 0, text: 'live counter'},
  {type: 'output', index: 0, text: 'ID  PID\nweb-1  42'},
  {type: 'done', index: 0, id: 'register', ms: 1200, result: {summary: 'one registered', data: {pids: [42]}}},
  {type: 'pause', ms: 1500},
  {type: 'step', index: 1, id: 'cleanup', title: 'Clean up', shows: 'Removes it all.'},
  {type: 'failed', index: 1, id: 'cleanup', ms: 5, error: 'a process is left'},
  {type: 'finished', ok: false, ms: 1300, error: 'step 2 "Clean up" failed: a process is left'},
]

describe('spread chart', () => {
  it('scales bars to the busiest instance and aligns the counts', () => {
    expect(spreadChart({'web-1': 20, 'web-2': 10, 'web-10': 5}, ['web-1', 'web-2', 'web-10'], 10)).toBe(
      ['web-1   20  ██████████', 'web-2   10  █████', 'web-10   5  ███'].join('\n'),
    )
  })

  it('shows instances that got nothing with no bar', () => {
    expect(spreadChart({a: 3}, ['a', 'b'], 3)).toBe('a  3  ███\nb  0')
    expect(spreadText({a: 3}, ['a', 'b'])).toBe('3 / 0')
  })
})

describe('wrap', () => {
  it('breaks at spaces within the width and keeps long words whole', () => {
    expect(wrap('one two three four', 9)).toEqual(['one two', 'three', 'four'])
    expect(wrap('averyveryverylongword x', 5)).toEqual(['averyveryverylongword', 'x'])
    expect(wrap('', 10)).toEqual([])
  })
})

describe('plain text', () => {
  it('prints steps, commands, indented output and outcomes, and skips live counters and pauses', () => {
    const render = plainRenderer()
    const text = RUN.map((e) => render(e))
      .filter((t) => t !== undefined)
      .join('\n')
    expect(text).toBe(
      [
        'svc demo: 2 steps on a temporary local registry, /tmp/svc-demo-x',
        'Each step shows the svc command that does the same; the registry is removed at the end, so try them on your own registry.',
        '',
        '[1/2] Start',
        '    What it shows.',
        '    $ svc register web --port 1234',
        '      ID  PID',
        '      web-1  42',
        '  ✓ one registered (1.2s)',
        '',
        '[2/2] Clean up',
        '    Removes it all.',
        '  ✗ a process is left',
      ].join('\n'),
    )
  })

  it('ends a good run with one closing line', () => {
    const render = plainRenderer()
    expect(render({type: 'finished', ok: true, ms: 2500})).toBe(
      '\nsvc demo: done in 2.5s; every step as expected, nothing left behind.',
    )
  })
})

describe('NDJSON', () => {
  it('prints one record per step with its commands and facts, then the outcome', () => {
    const render = jsonRenderer()
    const lines = RUN.map((e) => render(e)).filter((t) => t !== undefined)
    const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>)
    // every svc stream's schema: ts (ISO 8601) and type first
    for (const record of records) expect(Object.keys(record).slice(0, 2)).toEqual(['ts', 'type'])
    expect(records.map(({ts, ...rest}) => (typeof ts === 'string' ? rest : {ts}))).toEqual([
      {
        type: 'step',
        step: 1,
        id: 'register',
        title: 'Start',
        ok: true,
        ms: 1200,
        commands: ['svc register web --port 1234'],
        summary: 'one registered',
        data: {pids: [42]},
      },
      {
        type: 'step',
        step: 2,
        id: 'cleanup',
        title: 'Clean up',
        ok: false,
        ms: 5,
        commands: [],
        error: 'a process is left',
      },
      {
        type: 'finished',
        ok: false,
        ms: 1300,
        dir: '/tmp/svc-demo-x',
        error: 'step 2 "Clean up" failed: a process is left',
      },
    ])
  })
})
