import {spawn} from 'node:child_process'

import type {ServiceInstance} from '../registry/types.js'
import type {ChangeType} from './changes.js'

/** What SVC_CHANGE names: a change, or `snapshot` for the run at start-up. */
export type HandlerChange = ChangeType | 'snapshot'

export interface HandlerOptions {
  /** Quiet time after a change before the handler runs, so a burst of changes makes one run. */
  debounceMs: number
  log: (line: string) => void
  env?: NodeJS.ProcessEnv
}

interface Pending {
  changes: Set<HandlerChange>
  instances: ServiceInstance[]
}

/**
 * Runs `work` after a quiet time, at most one run at a time: a trigger during a run makes one more run after it,
 * so a burst of triggers makes one or two runs, never two at once.
 */
export class DebouncedRunner {
  private readonly delayMs: number
  private readonly work: () => Promise<void>
  private timer?: NodeJS.Timeout
  private running?: Promise<void>
  private again = false
  private closed = false

  constructor(delayMs: number, work: () => Promise<void>) {
    this.delayMs = delayMs
    this.work = work
  }

  /** Schedules a run after the quiet time (restarting it). */
  trigger(): void {
    if (this.closed) return
    clearTimeout(this.timer)
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.flush().catch(() => {})
    }, this.delayMs)
  }

  /** Runs now (or once more after the current run) and resolves when no run is left. */
  flush(): Promise<void> {
    clearTimeout(this.timer)
    this.timer = undefined
    if (this.running) {
      this.again = true
      return this.running
    }

    this.running = (async () => {
      try {
        do {
          this.again = false
          await this.work()
        } while (this.again)
      } finally {
        this.running = undefined
      }
    })()
    return this.running
  }

  /** Runs what is scheduled now, without waiting for the quiet time, and waits for the runs; later triggers are ignored. */
  async close(): Promise<void> {
    this.closed = true
    await (this.timer === undefined ? this.running : this.flush())
  }
}

/** How a shell command ended: `ok`, or a one-line reason (exit status, signal, could not start, timed out). */
export interface CommandResult {
  ok: boolean
  exitCode: number | null
  detail: string
  ms: number
}

export interface CommandOptions {
  env?: NodeJS.ProcessEnv
  /** Written to the command's stdin, then closed; without it stdin is /dev/null. */
  stdin?: string
  /** `stderr`: the command's stdout goes to svc's stderr too, keeping svc's stdout for its own output. */
  output?: 'inherit' | 'stderr'
  /** Kills the command (SIGTERM, then SIGKILL 2 s later) when it runs longer. */
  timeoutMs?: number
}

/** Runs one command through the shell and says how it ended; never throws. */
export function runShell(command: string, opts: CommandOptions = {}): Promise<CommandResult> {
  const started = Date.now()
  return new Promise((resolve) => {
    const child = spawn(command, {
      shell: true,
      stdio: [
        opts.stdin === undefined ? 'ignore' : 'pipe',
        opts.output === 'stderr' ? process.stderr : 'inherit',
        'inherit',
      ],
      env: {...process.env, ...opts.env},
    })
    let timedOut = false
    let killer: NodeJS.Timeout | undefined
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true
            child.kill('SIGTERM')
            killer = setTimeout(() => child.kill('SIGKILL'), 2000)
          }, opts.timeoutMs)
    const done = (result: Omit<CommandResult, 'ms'>): void => {
      clearTimeout(timer)
      clearTimeout(killer)
      resolve({...result, ms: Date.now() - started})
    }

    if (child.stdin) {
      child.stdin.on('error', () => {}) // a command that does not read stdin closes it early
      child.stdin.end(opts.stdin)
    }

    child.on('error', (error) => done({ok: false, exitCode: null, detail: `could not start: ${error.message}`}))
    child.on('exit', (code, signal) => {
      if (timedOut) done({ok: false, exitCode: code, detail: `timed out after ${opts.timeoutMs} ms`})
      else if (code === 0) done({ok: true, exitCode: 0, detail: 'exit status 0'})
      else done({ok: false, exitCode: code, detail: signal ? `killed by ${signal}` : `exit status ${code}`})
    })
  })
}

/**
 * Runs a shell command after changes, as `consul watch` handlers and consul-template do: debounced, at most
 * one run at a time, the service's current instances as JSON on stdin, SVC_SERVICE and SVC_CHANGE in the
 * environment. A failing handler is reported, never fatal.
 */
export class ChangeHandler {
  private readonly command: string
  private readonly options: HandlerOptions
  private readonly pending = new Map<string, Pending>()
  private readonly runner: DebouncedRunner
  private closed = false
  runs = 0
  failures = 0

  constructor(command: string, options: HandlerOptions) {
    this.command = command
    this.options = options
    this.runner = new DebouncedRunner(options.debounceMs, () => this.drain())
  }

  /** Records that `service` changed; `instances` is its state after the change. */
  notify(service: string, change: HandlerChange, instances: ServiceInstance[]): void {
    if (this.closed) return
    const entry = this.pending.get(service) ?? {changes: new Set<HandlerChange>(), instances}
    entry.changes.add(change)
    entry.instances = instances
    this.pending.set(service, entry)
    this.runner.trigger()
  }

  /** Runs what is pending now (without waiting for the debounce) and waits for the handler to finish. */
  async close(): Promise<void> {
    await this.runner.close()
    this.closed = true
  }

  private async drain(): Promise<void> {
    for (;;) {
      const next = this.pending.entries().next()
      if (next.done) break
      const [service, entry] = next.value
      this.pending.delete(service)
      await this.run(service, entry)
    }
  }

  private async run(service: string, entry: Pending): Promise<void> {
    this.runs++
    const result = await runShell(this.command, {
      stdin: JSON.stringify(entry.instances) + '\n',
      env: {
        ...this.options.env,
        SVC_SERVICE: service,
        SVC_CHANGE: [...entry.changes].join(','),
        SVC_INSTANCES: String(entry.instances.length),
      },
    })
    if (result.ok) return
    this.failures++
    const what = result.detail.startsWith('could not start') ? result.detail : `failed: ${result.detail}`
    this.options.log(`handler for ${service} ${what}`)
  }
}
