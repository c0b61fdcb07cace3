import {type ChildProcess, spawn} from 'node:child_process'

import type {BackendSpec} from '../../src/lib/registry/spec.js'
import {ROOT} from './cli.js'

// The shape of the drivers' 2,000-instance tests (issue 15): register N instances over N/5 services through the
// library, watch everything from another process, count its connections and the events it receives.

/** One watch event as the watcher process prints it. */
export interface WatcherLine {
  type: string
  /** Instances in a snapshot. */
  n?: number
  id?: string
  at: number
}

/** `registry.watch()` of everything in a process of its own, one JSON line per event. */
export class WatcherProcess {
  readonly lines: WatcherLine[] = []
  private readonly child: ChildProcess
  private output = ''
  private exited = false

  constructor(spec: BackendSpec) {
    const script = `
      import {openRegistry} from './src/lib/registry/index.ts'
      const registry = await openRegistry(${JSON.stringify(spec)}, {log: (m) => console.error(m)})
      for await (const e of registry.watch()) {
        const line = {type: e.type, at: Date.now()}
        if (e.type === 'snapshot') line.n = e.instances.length
        else if (e.type !== 'status') line.id = e.instance.id
        process.stdout.write(JSON.stringify(line) + '\\n')
      }
    `
    this.child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {cwd: ROOT})
    let pending = ''
    this.child.stdout?.on('data', (chunk: Buffer) => {
      pending += chunk.toString()
      const parts = pending.split('\n')
      pending = parts.pop() ?? ''
      for (const part of parts) if (part.trim() !== '') this.lines.push(JSON.parse(part) as WatcherLine)
    })
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.output += chunk.toString()
    })
    this.child.on('exit', () => {
      this.exited = true
    })
  }

  get pid(): number {
    return this.child.pid ?? -1
  }

  /** The first line that matches, within `ms`. */
  async waitFor(match: (line: WatcherLine) => boolean, ms: number): Promise<WatcherLine> {
    const until = Date.now() + ms
    for (;;) {
      const found = this.lines.find((line) => match(line))
      if (found) return found
      if (this.exited) throw new Error(`the watcher exited: ${this.output}`)
      if (Date.now() > until) throw new Error(`no such watch line within ${ms} ms: ${this.output}`)
      await new Promise((resolve) => {
        setTimeout(resolve, 50)
      })
    }
  }

  /** Lines other than status lines. */
  changes(): WatcherLine[] {
    return this.lines.filter((l) => l.type !== 'status')
  }

  stop(): void {
    if (!this.exited) this.child.kill('SIGKILL')
  }
}
