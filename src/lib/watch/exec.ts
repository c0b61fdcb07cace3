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
 * Runs a shell command after changes, as `consul watch` handlers and consul-template do: debounced, at most
 * one run at a time, the service's current instances as JSON on stdin, SVC_SERVICE and SVC_CHANGE in the
 * environment. A failing handler is reported, never fatal.
 */
export class ChangeHandler {
  private readonly command: string
  private readonly options: HandlerOptions
  private readonly pending = new Map<string, Pending>()
  private timer?: NodeJS.Timeout
  private running?: Promise<void>
  private closed = false
  runs = 0
  failures = 0

  constructor(command: string, options: HandlerOptions) {
    this.command = command
    this.options = options
  }

  /** Records that `service` changed; `instances` is its state after the change. */
  notify(service: string, change: HandlerChange, instances: ServiceInstance[]): void {
    if (this.closed) return
    const entry = this.pending.get(service) ?? {changes: new Set<HandlerChange>(), instances}
    entry.changes.add(change)
    entry.instances = instances
    this.pending.set(service, entry)
    clearTimeout(this.timer)
    this.timer = setTimeout(() => this.drain(), this.options.debounceMs)
  }

  /** Runs what is pending now (without waiting for the debounce) and waits for the handler to finish. */
  async close(): Promise<void> {
    clearTimeout(this.timer)
    await this.drain()
    this.closed = true
  }

  private drain(): Promise<void> {
    if (this.running) return this.running
    this.running = (async () => {
      try {
        for (;;) {
          const next = this.pending.entries().next()
          if (next.done) break
          const [service, entry] = next.value
          this.pending.delete(service)
          await this.run(service, entry)
        }
      } finally {
        this.running = undefined
      }
    })()
    return this.running
  }

  private run(service: string, entry: Pending): Promise<void> {
    this.runs++
    return new Promise((resolve) => {
      const child = spawn(this.command, {
        shell: true,
        stdio: ['pipe', 'inherit', 'inherit'],
        env: {
          ...process.env,
          ...this.options.env,
          SVC_SERVICE: service,
          SVC_CHANGE: [...entry.changes].join(','),
          SVC_INSTANCES: String(entry.instances.length),
        },
      })
      child.stdin.on('error', () => {}) // a handler that does not read stdin closes it early
      child.stdin.end(JSON.stringify(entry.instances) + '\n')
      child.on('error', (error) => {
        this.failures++
        this.options.log(`handler for ${service} could not start: ${error.message}`)
        resolve()
      })
      child.on('exit', (code, signal) => {
        if (code !== 0) {
          this.failures++
          this.options.log(`handler for ${service} failed: ${signal ? `killed by ${signal}` : `exit status ${code}`}`)
        }

        resolve()
      })
    })
  }
}
