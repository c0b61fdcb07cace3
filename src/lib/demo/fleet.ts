import {type ChildProcess, spawn} from 'node:child_process'
import {existsSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {packageRoot} from '../cluster/binaries.js'
import {ExternalError} from '../errors.js'
import type {ServiceInstance} from '../registry/types.js'
import type {InstanceMessage} from './instance.js'

/**
 * The instance script: beside this module in dist/lib/demo once built; from the CLI's bundle (dist/cli), where this
 * module is part of a chunk, the same built file under the package root.
 */
export const INSTANCE_SCRIPT = instanceScript()

function instanceScript(): string {
  const beside = fileURLToPath(new URL('instance.js', import.meta.url))
  const root = packageRoot()
  return existsSync(beside) || root === undefined ? beside : path.join(root, 'dist/lib/demo/instance.js')
}

/** A running demo instance: a child process serving HTTP and keeping its own registration alive. */
export class DemoInstance {
  readonly id: string
  readonly pid: number
  instance!: ServiceInstance
  private onDeregistered?: (at: number) => void
  private readonly deregisteredAt: Promise<number>
  exitCode: number | null = null
  exitSignal: NodeJS.Signals | null = null
  private readonly exited: Promise<void>
  private readonly stderr: string[] = []

  constructor(
    id: string,
    private readonly child: ChildProcess,
  ) {
    this.id = id
    if (child.pid === undefined) throw new ExternalError(`could not start instance ${id}`)
    this.pid = child.pid
    child.on('error', (error) => this.stderr.push(error.message))
    child.stderr?.on('data', (d: Buffer) => {
      this.stderr.push(d.toString())
      if (this.stderr.length > 20) this.stderr.shift()
    })
    this.deregisteredAt = new Promise((resolve) => {
      this.onDeregistered = resolve
    })
    child.on('message', (message: InstanceMessage) => {
      if (message.type === 'deregistered') this.onDeregistered?.(message.at)
    })
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitCode = code
        this.exitSignal = signal
        resolve()
      })
    })
  }

  get running(): boolean {
    return this.exitCode === null && this.exitSignal === null
  }

  get address(): string {
    return `${this.instance.address}:${this.instance.port}`
  }

  /** Resolves with the time (epoch ms) the instance reported that it deregistered itself. */
  deregistered(): Promise<number> {
    return this.deregisteredAt
  }

  /** Resolves with the instance once it has registered itself; rejects if it exits or fails first. */
  registered(timeoutMs: number): Promise<ServiceInstance> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(`did not register within ${timeoutMs} ms`), timeoutMs)
      const onMessage = (message: InstanceMessage): void => {
        if (message.type === 'registered') {
          cleanup()
          this.instance = message.instance
          resolve(message.instance)
        } else if (message.type === 'failed') fail(message.error)
      }

      const onExit = (): void => fail(`exited (${this.exitCode ?? this.exitSignal}) before registering`)
      const fail = (why: string): void => {
        cleanup()
        const detail = this.stderr.join('').trim().split('\n').at(-1)
        reject(new ExternalError(`instance ${this.id} ${why}${detail ? `: ${detail}` : ''}`))
      }

      const cleanup = (): void => {
        clearTimeout(timer)
        this.child.off('message', onMessage)
        this.child.off('exit', onExit)
      }

      this.child.on('message', onMessage)
      this.child.once('exit', onExit)
    })
  }

  /** Asks the instance to stop (it deregisters, drains, exits); SIGKILL after `timeoutMs`. True when it stopped by itself. */
  async stop(timeoutMs: number): Promise<boolean> {
    if (!this.running) return true
    this.child.kill('SIGTERM')
    if (await this.waitExit(timeoutMs)) return true
    this.child.kill('SIGKILL')
    await this.waitExit(2000)
    return false
  }

  /** Resolves true when the process has exited within `timeoutMs`. */
  async waitExit(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs)
    })
    const result = await Promise.race([this.exited.then(() => true), timedOut])
    clearTimeout(timer)
    return result
  }
}

/** Starts one instance process; it listens on a free 127.0.0.1 port and registers itself in `dir`. */
export function startInstance(opts: {dir: string; service: string; id: string; graceMs: number}): DemoInstance {
  const child = spawn(
    process.execPath,
    [
      INSTANCE_SCRIPT,
      '--registry',
      opts.dir,
      '--service',
      opts.service,
      '--id',
      opts.id,
      '--grace',
      String(opts.graceMs),
    ],
    {stdio: ['ignore', 'ignore', 'pipe', 'ipc']},
  )
  return new DemoInstance(opts.id, child)
}

/** Whether a process with this id exists (signal 0 checks without sending anything). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
