import {spawn} from 'node:child_process'
import {closeSync, openSync, readFileSync, writeSync} from 'node:fs'
import {open} from 'node:fs/promises'

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => {
    setTimeout(resolve, ms)
  })

export interface ExitInfo {
  code: number | null
  signal: NodeJS.Signals | null
}

/** Exits of the processes this process spawned, by pid (other processes' exits are seen through /proc only). */
const exits = new Map<number, ExitInfo>()

export function exitOf(pid: number): ExitInfo | undefined {
  return exits.get(pid)
}

export interface SpawnOptions {
  cwd: string
  logFile: string
  env?: NodeJS.ProcessEnv
}

/**
 * Starts a server that outlives this process: its own process group, stdin closed, stdout and stderr appended to
 * `logFile`, not keeping this event loop alive. Resolves with its pid once it runs; rejects when it cannot start.
 */
export function spawnDetached(command: string, args: readonly string[], opts: SpawnOptions): Promise<number> {
  const fd = openSync(opts.logFile, 'a')
  try {
    writeSync(fd, `--- ${new Date().toISOString()} svc starts: ${[command, ...args].join(' ')}\n`)
  } catch {
    // the header is a courtesy
  }

  return new Promise<number>((resolve, reject) => {
    let child
    try {
      child = spawn(command, args, {
        cwd: opts.cwd,
        env: opts.env ?? process.env,
        detached: true,
        stdio: ['ignore', fd, fd],
      })
    } catch (error) {
      closeSync(fd)
      reject(error)
      return
    }

    child.once('error', (error) => {
      closeSync(fd)
      reject(error)
    })
    child.once('spawn', () => {
      closeSync(fd)
      const {pid} = child
      if (pid === undefined) {
        reject(new Error(`${command} started without a pid`))
        return
      }

      child.once('exit', (code, signal) => exits.set(pid, {code, signal}))
      child.unref()
      resolve(pid)
    })
  })
}

type ProcState = 'running' | 'stopped' | 'zombie' | 'gone'

/** The process's state from /proc; without /proc, `running` whenever signal 0 reaches it. */
export function processState(pid: number): ProcState {
  try {
    process.kill(pid, 0)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return 'gone'
  }

  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return exits.has(pid) ? 'gone' : 'running'
  }

  // pid (comm) S ...: comm may hold spaces and parentheses, so the state follows the last ')'.
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
  if (state === 'Z' || state === 'X') return 'zombie'
  if (state === 'T' || state === 't') return 'stopped'
  return 'running'
}

/** The process exists and is not a zombie (a SIGSTOPped process is alive). */
export function isAlive(pid: number): boolean {
  const state = processState(pid)
  return state === 'running' || state === 'stopped'
}

/**
 * The live process `pid` is the one we started: its command line mentions `marker` (the member's folder), so a
 * recycled pid is never signalled. Without /proc, any live process counts.
 */
export function ownsProcess(pid: number | undefined, marker: string): pid is number {
  if (pid === undefined || !isAlive(pid)) return false
  let cmdline: string
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
  } catch {
    return true
  }

  return cmdline.includes(marker)
}

/** Signals the process group led by `pid` (every server runs in its own), else the process alone. */
export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal)
    return
  } catch {
    // not a group leader (or gone): try the process itself
  }

  try {
    process.kill(pid, signal)
  } catch {
    // gone
  }
}

/** Waits until the process is gone (or a zombie); false on timeout. */
export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (isAlive(pid)) {
    if (Date.now() >= deadline) return false
    await sleep(50)
  }

  return true
}

/**
 * Stops a server: SIGTERM (and SIGCONT, in case it was stopped), then SIGKILL once `graceMs` passed; resolves once
 * it is gone. Throws only if even SIGKILL did not end it.
 */
export async function terminate(pid: number, graceMs = 10_000): Promise<void> {
  if (!isAlive(pid)) return
  signalGroup(pid, 'SIGTERM')
  signalGroup(pid, 'SIGCONT')
  if (await waitForExit(pid, graceMs)) return
  await kill(pid)
}

export async function kill(pid: number): Promise<void> {
  signalGroup(pid, 'SIGKILL')
  if (!(await waitForExit(pid, 10_000))) throw new Error(`process ${pid} survived SIGKILL`)
}

/** The last lines of a log file, at most `maxBytes` of it; empty when it cannot be read. */
export async function tailFile(file: string, maxLines = 30, maxBytes = 8192): Promise<string> {
  let handle
  try {
    handle = await open(file, 'r')
    const {size} = await handle.stat()
    const length = Math.min(size, maxBytes)
    const buffer = Buffer.alloc(length)
    await handle.read(buffer, 0, length, size - length)
    const lines = buffer.toString('utf8').split('\n')
    if (length < size) lines.shift()
    while (lines.length > 0 && lines.at(-1)?.trim() === '') lines.pop()
    return lines.slice(-maxLines).join('\n')
  } catch {
    return ''
  } finally {
    await handle?.close()
  }
}
