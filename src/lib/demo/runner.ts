import {mkdtemp} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

import {ExternalError, formatError, UserError} from '../errors.js'
import {openRegistry} from '../registry/index.js'
import {type DemoContext, type DemoStep, demoSteps, type StepIO} from './steps.js'
import type {DemoEvent, DemoOptions, StepResult} from './types.js'

const PROGRESS_EVERY_MS = 100

/** Ctrl-C (or SIGTERM) stopped the demo; everything was cleaned up. */
export class DemoInterrupted extends UserError {
  override name = 'DemoInterrupted'

  constructor(step: string) {
    super(`interrupted during ${step}; the demo cleaned up after itself`, undefined, 130)
  }
}

/** One event at a time to every listener; a listener added late gets the events so far first. */
export class DemoFeed {
  readonly events: DemoEvent[] = []
  private readonly listeners = new Set<(event: DemoEvent) => void>()

  push = (...events: DemoEvent[]): void => {
    for (const event of events) {
      this.events.push(event)
      for (const listener of this.listeners) listener(event)
    }
  }

  subscribe(listener: (event: DemoEvent) => void): () => void {
    for (const event of this.events) listener(event)
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }
}

/**
 * Runs the tour on a fresh temporary local registry, reporting through `emit`. A step whose outcome is not the
 * expected one stops the tour; clean-up runs whatever happened (also on abort), and then the failure is thrown
 * as one line naming the step.
 */
export async function runDemo(
  opts: DemoOptions,
  emit: (event: DemoEvent) => void,
  steps: DemoStep[] = demoSteps(opts),
): Promise<StepResult[]> {
  const started = Date.now()
  const dir = await mkdtemp(path.join(tmpdir(), 'svc-demo-'))
  const backend = `local://${dir}`
  const registry = await openRegistry({kind: 'local', dir})
  const ctx: DemoContext = {opts, dir, backend, registry, instances: []}
  const {signal} = opts
  const results: StepResult[] = []
  const state: TourState = {}
  emit({type: 'plan', steps: steps.map((s) => ({id: s.id, title: s.title})), dir, backend})
  for (const [index, step] of steps.entries()) {
    const last = index === steps.length - 1
    if (!last && (state.failure !== undefined || state.interrupted !== undefined)) continue
    if (!last && signal?.aborted) {
      state.interrupted ??= 'a pause between steps'
      continue
    }

    await runStep({step, index, last, ctx, emit, signal, state, results})
    if (!last && state.failure === undefined && !signal?.aborted && opts.paceMs > 0) {
      emit({type: 'pause', ms: opts.paceMs})
      await sleep(opts.paceMs, undefined, {signal}).catch(() => {})
    }
  }

  // a step abandoned on abort may still hold the registry: clean-up closed it unless clean-up itself failed early
  if (!ctx.registryClosed) await registry.close().catch(() => {})
  const {failure, interrupted} = state
  const error = interrupted === undefined ? failure : `interrupted during ${interrupted}`
  emit({type: 'finished', ok: error === undefined, ms: Date.now() - started, ...(error !== undefined && {error})})
  if (interrupted !== undefined) throw new DemoInterrupted(interrupted)
  if (failure !== undefined) throw new ExternalError(failure)
  return results
}

/** How the tour stands: the first failure, or where an abort interrupted it. */
interface TourState {
  failure?: string
  interrupted?: string
}

interface StepRun {
  step: DemoStep
  index: number
  last: boolean
  ctx: DemoContext
  emit: (event: DemoEvent) => void
  signal: AbortSignal | undefined
  state: TourState
  results: StepResult[]
}

/** Runs one step, reporting its outcome; a failure or an abort is recorded in `state`, not thrown. */
async function runStep({step, index, last, ctx, emit, signal, state, results}: StepRun): Promise<void> {
  emit({type: 'step', index, id: step.id, title: step.title, shows: step.shows})
  const t = Date.now()
  const name = `step ${index + 1} "${step.title}"`
  const running = step.run(ctx, stepIO(index, emit))
  try {
    // clean-up is not abortable: it is what an abort leads to
    const result = await (last ? running : abortable(running, signal))
    results.push(result)
    emit({type: 'done', index, id: step.id, ms: Date.now() - t, result})
  } catch (error) {
    const aborted = !last && signal?.aborted === true
    emit({
      type: 'failed',
      index,
      id: step.id,
      ms: Date.now() - t,
      error: aborted ? 'interrupted' : formatError(error),
    })
    if (aborted) {
      state.interrupted = name
      // the step winds down on the signal; let it, so clean-up sees everything it started
      await Promise.race([running.catch(() => {}), sleep(3000)])
    } else state.failure ??= `${name} failed: ${formatError(error)}`
  }
}

/** The step's view of the tour: every call is an event for step `index`. */
function stepIO(index: number, emit: (event: DemoEvent) => void): StepIO {
  let lastProgress = 0
  return {
    command: (text) => emit({type: 'command', index, text}),
    output: (text) => emit({type: 'output', index, text}),
    progress(text) {
      // live counters change per request: a view needs ten frames a second, not one per answer
      const now = Date.now()
      if (now - lastProgress < PROGRESS_EVERY_MS) return
      lastProgress = now
      emit({type: 'progress', index, text})
    },
  }
}

/** The promise's outcome, or a rejection as soon as `signal` aborts (the work itself winds down on its own). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise
  // the abandoned work may still fail later: that is not news
  promise.catch(() => {})
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new Error('interrupted'))
    if (signal.aborted) onAbort()
    signal.addEventListener('abort', onAbort, {once: true})
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(error)
      },
    )
  })
}
