import {createWriteStream, openSync, type WriteStream} from 'node:fs'

import {UserError} from '../errors.js'
import {AccessFormatter, type AccessLogFormat, type AccessRecord} from './access-format.js'

/** Lines are written at most this often, or as soon as this many bytes wait: one write per batch, never per request. */
const FLUSH_MS = 100
const FLUSH_BYTES = 64 * 1024

export interface AccessLogOptions {
  /** A file to append to; `-` or undefined: stderr. */
  file?: string
  format: AccessLogFormat
  /** Where a write failure is reported (once per failure, not per line). */
  log?: (line: string) => void
}

/**
 * The access log: one line a request in the chosen format, buffered and written in batches (to stderr, or appended
 * to a file). `reopen()` (on SIGUSR1) closes the file and opens the path again, as logrotate's postrotate expects.
 */
export class AccessLog {
  readonly formatter: AccessFormatter
  private buffer = ''
  private timer: NodeJS.Timeout | undefined
  private stream: WriteStream | undefined
  private failed = false

  constructor(private readonly opts: AccessLogOptions) {
    this.formatter = new AccessFormatter(opts.format)
    if (this.toFile) this.stream = this.open(true)
  }

  private get toFile(): boolean {
    return this.opts.file !== undefined && this.opts.file !== '-'
  }

  /** Opens the file for appending (synchronously: once at start and once per SIGUSR1, never per request). */
  private open(starting: boolean): WriteStream | undefined {
    const file = this.opts.file!
    let fd: number
    try {
      fd = openSync(file, 'a')
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? String(error)
      if (starting)
        throw new UserError(
          `cannot open the access log ${file}: ${code}`,
          'create its directory, or pick a writable path',
        )
      this.opts.log?.(`access log: cannot reopen ${file}: ${code}; lines are dropped until SIGUSR1 reopens it`)
      return undefined
    }

    this.failed = false
    const stream = createWriteStream(file, {fd})
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (this.failed) return
      this.failed = true
      this.opts.log?.(`access log: cannot write ${file}: ${error.code ?? error.message}`)
    })
    return stream
  }

  write(record: AccessRecord): void {
    this.buffer += this.formatter.line(record) + '\n'
    if (this.buffer.length >= FLUSH_BYTES) this.flush()
    else if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), FLUSH_MS)
      this.timer.unref()
    }
  }

  /** Writes what waits, in one write. */
  flush(): void {
    clearTimeout(this.timer)
    this.timer = undefined
    if (this.buffer === '') return
    const text = this.buffer
    this.buffer = ''
    if (this.toFile) this.stream?.write(text)
    else process.stderr.write(text)
  }

  /** Flushes, then closes the file and opens its path again (a rotated file is left to logrotate). */
  reopen(): void {
    this.flush()
    if (!this.toFile) return
    this.stream?.end()
    this.stream = this.open(false)
  }

  /** Flushes and closes the file; resolves once everything is written. */
  async close(): Promise<void> {
    this.flush()
    const {stream} = this
    this.stream = undefined
    if (stream === undefined) return
    await new Promise<void>((resolve) => {
      stream.end(() => resolve())
    })
  }
}

/** The access log `--access-log [FILE]` and `--access-log-format` ask for, or undefined when off. */
export function accessLogOf(
  file: string | undefined,
  format: string,
  log?: (line: string) => void,
): AccessLog | undefined {
  if (file === undefined) return undefined
  if (format !== 'svc' && format !== 'combined' && format !== 'json')
    throw new UserError(`unknown access log format "${format}"`, 'use --access-log-format svc, combined or json')
  return new AccessLog({file, format, log})
}
