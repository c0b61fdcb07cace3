import {type ChildProcess, spawn} from 'node:child_process'
import {readdirSync, readFileSync, readlinkSync} from 'node:fs'

import {parseProcNetTcp} from '../../src/lib/procnet.js'
import type {BackendSpec} from '../../src/lib/registry/spec.js'
import type {InstanceInput, RegisterOptions, Registry, RegistrationHandle} from '../../src/lib/registry/types.js'
import {ROOT} from './cli.js'

// The shape of the drivers' 2,000-instance tests (issue 15): register N instances over N/5 services through the
// library, watch everything from another process, count its connections and the events it receives.

/** Registrations in flight at once while registering many. */
const REGISTERING = 100

/** Instance `i` of `n` over `services` services, on a port of its own (ZooKeeper names znodes by address:port). */
export function scaleInstance(i: number, services: number): InstanceInput {
  return {service: `scale-${i % services}`, id: `i${i}`, address: '127.0.0.1', port: 20_000 + i}
}

/** Registers instances 0..n-1 over `services` services, a bounded number at a time. */
export async function registerMany(
  registry: Registry,
  n: number,
  services: number,
  opts: RegisterOptions = {},
): Promise<RegistrationHandle[]> {
  const handles: RegistrationHandle[] = []
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++
      handles.push(await registry.register(scaleInstance(i, services), opts))
    }
  }

  await Promise.all(Array.from({length: REGISTERING}, () => worker()))
  return handles
}

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

/** The established TCP connections a process holds, from /proc/<pid>/fd and /proc/net/tcp{,6}. */
export function establishedConnections(pid: number): number {
  const inodes = new Set<number>()
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
      if (match) inodes.add(Number(match[1]))
    } catch {
      // closed meanwhile
    }
  }

  const ESTABLISHED = 0x01
  let count = 0
  for (const file of ['tcp', 'tcp6']) {
    const sockets = parseProcNetTcp(readFileSync(`/proc/${pid}/net/${file}`, 'utf8'))
    for (const socket of sockets) if (socket.state === ESTABLISHED && inodes.has(socket.inode)) count++
  }

  return count
}
