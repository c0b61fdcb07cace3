import {existsSync} from 'node:fs'
import {rm} from 'node:fs/promises'
import {setTimeout as sleep} from 'node:timers/promises'
import {describe, expect, it} from 'vitest'

import {UserError} from '../../src/lib/errors.js'
import {DemoFeed, DemoInterrupted, runDemo} from '../../src/lib/demo/runner.js'
import type {DemoContext, DemoStep, StepIO} from '../../src/lib/demo/steps.js'
import {
  DEMO_DEFAULTS,
  type DemoEvent,
  type DemoOptions,
  type StepId,
  type StepResult,
} from '../../src/lib/demo/types.js'

function options(overrides: Partial<DemoOptions> = {}): DemoOptions {
  return {...DEMO_DEFAULTS, paceMs: 0, ...overrides}
}

interface Trace {
  ran: string[]
  dirs: string[]
}

/** Fake steps: each records that it ran; `work` replaces the middle one's body. */
function steps(trace: Trace, work?: (ctx: DemoContext, io: StepIO) => Promise<void>): DemoStep[] {
  const step = (id: StepId, title: string, body?: (ctx: DemoContext, io: StepIO) => Promise<void>): DemoStep => ({
    id,
    title,
    shows: `${title} shows this.`,
    async run(ctx, io) {
      trace.ran.push(id)
      io.command(`svc ${id}`)
      await body?.(ctx, io)
      io.output(`${id} output`)
      return {summary: `${id} ok`, data: {id}}
    },
  })
  return [
    step('register', 'One'),
    step('resolve', 'Two', work),
    step('proxy', 'Three'),
    step('cleanup', 'Clean up', async (ctx) => {
      trace.dirs.push(ctx.dir)
      await ctx.registry.close()
      ctx.registryClosed = true
      await rm(ctx.dir, {recursive: true, force: true})
    }),
  ]
}

async function run(opts: DemoOptions, work?: (ctx: DemoContext, io: StepIO) => Promise<void>) {
  const events: DemoEvent[] = []
  const trace: Trace = {ran: [], dirs: []}
  let results: StepResult[] | undefined
  let error: Error | undefined
  try {
    results = await runDemo(opts, (e) => events.push(e), steps(trace, work))
  } catch (error_) {
    error = error_ as Error
  }

  return {events, trace, results, error}
}

describe('the demo runner', () => {
  it('runs the steps in order on a fresh temporary local registry, reporting each, pausing between them', async () => {
    const {events, trace, results} = await run(options({paceMs: 5}))
    expect(trace.ran).toEqual(['register', 'resolve', 'proxy', 'cleanup'])
    expect(results?.map((r) => r.summary)).toEqual(['register ok', 'resolve ok', 'proxy ok', 'cleanup ok'])
    expect(events.map((e) => e.type)).toEqual([
      'plan',
      ...Array.from({length: 3}, () => ['step', 'command', 'output', 'done', 'pause']).flat(),
      'step',
      'command',
      'output',
      'done',
      'finished',
    ])
    const plan = events[0] as Extract<DemoEvent, {type: 'plan'}>
    expect(plan.dir).toMatch(/svc-demo-/)
    expect(plan.backend).toBe(`local://${plan.dir}`)
    expect(trace.dirs).toEqual([plan.dir])
    expect(existsSync(plan.dir)).toBe(false)
    expect(events.at(-1)).toMatchObject({type: 'finished', ok: true})
  })

  it('stops at a step whose outcome is wrong, still cleans up, and names the step in one line', async () => {
    const {events, trace, error} = await run(options({paceMs: 5}), async () => {
      throw new UserError('2 of 60 requests failed', 'see the proxy log')
    })
    expect(trace.ran).toEqual(['register', 'resolve', 'cleanup'])
    expect(error?.message).toBe('step 2 "Two" failed: 2 of 60 requests failed: see the proxy log')
    expect(events).toContainEqual(
      expect.objectContaining({type: 'failed', index: 1, error: '2 of 60 requests failed: see the proxy log'}),
    )
    // no pause after a failure: clean-up follows at once
    expect(events.filter((e) => e.type === 'pause')).toHaveLength(1)
    expect(events.at(-1)).toMatchObject({type: 'finished', ok: false, error: error?.message})
    expect(existsSync(trace.dirs[0]!)).toBe(false)
  })

  it('on abort leaves the step it is in, cleans up, and reports the interruption (exit status 130)', async () => {
    const controller = new AbortController()
    let wound = false
    const {events, trace, error} = await run(options({signal: controller.signal}), async (_ctx, io) => {
      io.output('waiting')
      setTimeout(() => controller.abort(), 20)
      // work that only ends some time after the abort: clean-up waits for it
      await new Promise<void>((resolve) => {
        controller.signal.addEventListener('abort', () => setTimeout(resolve, 30))
      })
      wound = true
    })
    expect(wound).toBe(true)
    expect(trace.ran).toEqual(['register', 'resolve', 'cleanup'])
    expect(error).toBeInstanceOf(DemoInterrupted)
    expect((error as DemoInterrupted).exitCode).toBe(130)
    expect(error?.message).toBe('interrupted during step 2 "Two"; the demo cleaned up after itself')
    expect(events).toContainEqual(expect.objectContaining({type: 'failed', index: 1, error: 'interrupted'}))
    expect(events.at(-1)).toMatchObject({type: 'finished', ok: false})
  })

  it('on abort in a pause runs no further step but the clean-up', async () => {
    const controller = new AbortController()
    const pending = run(options({paceMs: 10_000, signal: controller.signal}))
    await sleep(50)
    controller.abort()
    const {trace, error} = await pending
    expect(trace.ran).toEqual(['register', 'cleanup'])
    expect(error?.message).toBe('interrupted during a pause between steps; the demo cleaned up after itself')
  })

  it('passes on at most ten live counters a second', async () => {
    let ms = 0
    const {events} = await run(options(), async (_ctx, io) => {
      const started = Date.now()
      for (let i = 0; i < 50; i++) {
        io.progress(`${i}`)
        await sleep(2)
      }

      ms = Date.now() - started
    })
    const progress = events.filter((e) => e.type === 'progress')
    expect(progress[0]).toMatchObject({text: '0'})
    // one at the start, then one per 100 ms at most, however slow the machine is
    expect(progress.length).toBeLessThanOrEqual(1 + Math.floor(ms / 100))
    expect(progress.length).toBeLessThan(50)
  })
})

describe('the feed', () => {
  it('gives a late listener the events so far, then the new ones', () => {
    const feed = new DemoFeed()
    feed.push({type: 'pause', ms: 1})
    const seen: DemoEvent[] = []
    const off = feed.subscribe((e) => seen.push(e))
    feed.push({type: 'pause', ms: 2})
    off()
    feed.push({type: 'pause', ms: 3})
    expect(seen).toEqual([
      {type: 'pause', ms: 1},
      {type: 'pause', ms: 2},
    ])
  })
})
