import {type ChildProcess, spawn} from 'node:child_process'
import {appendFileSync, mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import type {Readable} from 'node:stream'
import {setTimeout as sleep} from 'node:timers/promises'
import {fileURLToPath} from 'node:url'
import {expect} from 'vitest'

import {outputCopyPath, outputDir} from './secrets.js'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
export const BIN = path.join(ROOT, 'bin', 'run.js')
/** An empty config directory: a `svc config` file of the machine's user must not steer the tests' commands. */
const CONFIG_HOME = mkdtempSync(path.join(tmpdir(), 'svc-test-config-'))

export interface CliResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** Runs the built binary to completion, bounded in time. */
export function runCli(args: string[], opts: {env?: NodeJS.ProcessEnv; timeoutMs?: number} = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawnCli(args, opts.env)
    let stdout = ''
    let stderr = ''
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString()
    })
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString()
    })
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`svc ${args.join(' ')} did not finish in ${opts.timeoutMs ?? 20_000} ms; stderr: ${stderr}`))
    }, opts.timeoutMs ?? 20_000)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({code, signal, stdout, stderr})
    })
  })
}

/** Starts the built binary in the background; the caller stops it. */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    env: {...process.env, NO_COLOR: '1', XDG_CONFIG_HOME: CONFIG_HOME, SVC_PROFILE: '', ...env},
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  copyOutput(child)
  return child
}

/** Keeps a copy of what svc prints, for the global check that no recorded secret appears in it (test/helpers/secrets.ts). */
function copyOutput(child: ChildProcess): void {
  const dir = outputDir()
  if (dir === undefined) return
  let testPath: string | undefined
  try {
    testPath = expect.getState().testPath
  } catch {
    // outside a test: the copy is named unknown-test
  }

  const file = outputCopyPath(dir, testPath, child.pid)
  const streams = [child.stdout, child.stderr].filter((s): s is Readable => s !== null)
  for (const stream of streams) tapData(stream, (chunk) => appendFileSync(file, chunk))
  // output no test ever read is still svc's output: drain it into the copy once the process is gone
  child.once('exit', () => {
    for (const stream of streams) if (stream.readableFlowing === null) stream.resume()
  })
}

/** Sees every chunk a stream hands its readers, without making it flow earlier than its readers ask. */
function tapData(stream: Readable, onChunk: (chunk: Buffer | string) => void): void {
  const emit = stream.emit.bind(stream)
  stream.emit = (event: string | symbol, ...rest: unknown[]): boolean => {
    if (event === 'data') onChunk(rest[0] as Buffer | string)
    return emit(event, ...rest)
  }
}

/** Resolves with the first stdout line that matches, or rejects after the timeout. */
export function waitForOutput(child: ChildProcess, pattern: RegExp, timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = ''
    let errors = ''
    const onErr = (d: Buffer): void => {
      errors += d.toString()
    }

    const onData = (d: Buffer): void => {
      seen += d.toString()
      const match = seen.split('\n').find((line) => pattern.test(line))
      if (match !== undefined) {
        cleanup()
        resolve(match)
      }
    }

    const onExit = (): void => {
      cleanup()
      reject(new Error(`process exited before printing ${pattern}; stdout: ${seen} stderr: ${errors}`))
    }

    const timer = setTimeout(() => {
      cleanup()
      reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms; stdout: ${seen} stderr: ${errors}`))
    }, timeoutMs)
    function cleanup(): void {
      clearTimeout(timer)
      child.stdout!.off('data', onData)
      child.stderr!.off('data', onErr)
      child.off('exit', onExit)
    }

    child.stdout!.on('data', onData)
    child.stderr!.on('data', onErr)
    child.once('exit', onExit)
  })
}

export function waitForExit(child: ChildProcess, timeoutMs = 15_000): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode)
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`process did not exit within ${timeoutMs} ms`)), timeoutMs)
    child.once('exit', (code) => {
      clearTimeout(timer)
      resolve(code)
    })
  })
}

/** Polls a condition (for observations of another process), bounded in time. */
export async function eventually<T>(
  probe: () => Promise<T | undefined | false>,
  timeoutMs: number,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < deadline) {
    try {
      const value = await probe()
      if (value !== undefined && value !== false) return value
    } catch (error) {
      last = error
    }

    await sleep(intervalMs)
  }

  throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${String(last)}` : ''}`)
}
