import {errorMessage, ExternalError, quote, UserError} from '../errors.js'
import {type StreamEvent, streamEvent} from '../events.js'
import type {Registry} from '../registry/types.js'
import {DebouncedRunner, runShell} from '../watch/exec.js'
import {TemplateError} from './engine.js'
import {type LoadedTemplate, templateUsageError} from './load.js'
import {currentOutput, writeOutput} from './output.js'
import {ServiceState} from './state.js'

export interface TemplateRunOptions {
  templates: LoadedTemplate[]
  /** Render once from the current registry, run the commands, and return. */
  once: boolean
  /** Print what would be written; write nothing, run nothing. */
  dryRun: boolean
  /** Quiet time after a change before rendering, so a burst of changes makes one render (and one reload). */
  debounceMs: number
  /** A command running longer is killed and reported as failed. */
  execTimeoutMs: number
  signal: AbortSignal
  /** Every event (docs/json.md): rendered, exec, error, watching, backend. */
  event: (event: StreamEvent) => void
  /** With dryRun: the rendered text of one output. */
  print: (out: string, content: string) => void
}

/**
 * One pass over every template, then the commands of the outputs it changed; `initial` (the first, at start): a
 * template error stops the command. Resolves with the first failed command's one-line report, if any.
 */
async function renderPass(
  state: ServiceState,
  opts: TemplateRunOptions,
  printed: Map<string, string>,
  initial: boolean,
): Promise<string | undefined> {
  const commands: Array<{command: string; out: string}> = []
  for (const {spec, compiled} of opts.templates) {
    let content: string
    try {
      content = compiled.render(state)
    } catch (error) {
      if (!(error instanceof TemplateError)) throw error
      if (initial) throw templateUsageError(error)
      // the last good output stays in place: a broken render never reaches the consumer
      opts.event(streamEvent('error', {template: spec.source, out: spec.out, message: error.message}))
      continue
    }

    const bytes = Buffer.from(content)
    if (opts.dryRun) {
      if (printed.get(spec.out) === content) continue
      printed.set(spec.out, content)
      opts.event(streamEvent('rendered', {template: spec.source, out: spec.out, bytes: bytes.length, content}))
      opts.print(spec.out, content)
      continue
    }

    try {
      const before = await currentOutput(spec.out)
      if (before?.equals(bytes)) continue
      await writeOutput(spec.out, bytes)
    } catch (error) {
      const message = `cannot write ${spec.out}: ${errorMessage(error)}`
      if (initial) throw new UserError(message, 'check that the directory is writable by this user', 1)
      opts.event(streamEvent('error', {template: spec.source, out: spec.out, message}))
      continue
    }

    opts.event(streamEvent('rendered', {template: spec.source, out: spec.out, bytes: bytes.length}))
    // a command shared by several outputs (one nginx reload for two files) runs once per pass
    if (spec.exec !== undefined && !commands.some((c) => c.command === spec.exec)) {
      commands.push({command: spec.exec, out: spec.out})
    }
  }

  return runCommands(commands, opts)
}

/** The commands one after another (never two at once), each reported; the first failure's one-line report. */
async function runCommands(
  commands: Array<{command: string; out: string}>,
  opts: TemplateRunOptions,
): Promise<string | undefined> {
  let failed: string | undefined
  for (const {command, out} of commands) {
    const result = await runShell(command, {
      timeoutMs: opts.execTimeoutMs,
      output: 'stderr',
      env: {SVC_TEMPLATE_OUT: out},
    })
    const {ok, exitCode, detail, ms} = result
    opts.event(streamEvent('exec', {command, out, ok, exitCode, detail, ms}))
    if (!ok) failed ??= `--exec ${quote(command)} failed: ${detail}`
  }

  return failed
}

/**
 * consul-template's loop over svc's registry: one watch of every service; the templates rendered on the first
 * snapshot and again after every change (debounced); an output written only when its bytes change, and then its
 * command run, one command at a time. A failing command or render is reported and the loop goes on.
 */
export async function runTemplates(
  registry: Pick<Registry, 'watch' | 'description'>,
  opts: TemplateRunOptions,
): Promise<void> {
  const state = new ServiceState()
  const printed = new Map<string, string>()
  let dirty = false
  const runner = new DebouncedRunner(opts.debounceMs, async () => {
    if (!dirty) return
    dirty = false
    await renderPass(state, opts, printed, false)
  })
  let started = false
  try {
    for await (const event of registry.watch(undefined, {signal: opts.signal})) {
      if (event.type === 'status') {
        opts.event(streamEvent('backend', {state: event.state, detail: event.detail}))
        continue
      }

      state.apply(event)
      if (started) {
        dirty = true
        runner.trigger()
        continue
      }

      started = true
      const failed = await renderPass(state, opts, printed, true)
      if (opts.once) {
        if (failed) throw new ExternalError(failed, 'the output was written; fix the command and run again')
        return
      }

      opts.event(
        streamEvent('watching', {
          backend: registry.description,
          services: state.serviceCount,
          instances: state.instanceCount,
          templates: opts.templates.length,
        }),
      )
    }
  } finally {
    // a change seen just before the stop is rendered, not dropped; a stop before the first snapshot renders nothing
    if (started && !opts.once) await runner.close()
  }
}
