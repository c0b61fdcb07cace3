import type {Interfaces} from '@oclif/core'
import {Command} from '@oclif/core/command'
import {ExitError} from '@oclif/core/errors'

import {formatError, UserError} from './lib/errors.js'
import {singleDashFlag} from './lib/usage.js'

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<T['baseFlags'] & T['flags']>
export type BaseArgs<T extends typeof Command> = Interfaces.InferredArgs<T['args']>

/** What every svc command shares: parsing, one-line errors with exit 2 for usage and 1 at run time, output, signals. */
export abstract class SvcCommand<T extends typeof Command> extends Command {
  static baseFlags = {}

  protected flags!: BaseFlags<T>
  protected args!: BaseArgs<T>
  /** The flags given on the command line (not from the environment, a default or the config). */
  protected argvFlags = new Set<string>()
  /** The flags of the command line in the order given, for flags whose meaning depends on their neighbours. */
  protected argvFlagTokens: Array<{flag: string; input: string}> = []
  private signalHandlers: Array<() => void> = []

  async init(): Promise<void> {
    await super.init()
    const {args, flags, raw} = await this.parse({
      args: this.ctor.args,
      baseFlags: (super.ctor as typeof SvcCommand).baseFlags,
      enableJsonFlag: this.ctor.enableJsonFlag,
      flags: this.ctor.flags,
      strict: this.ctor.strict,
    })
    this.flags = flags as BaseFlags<T>
    this.args = args as BaseArgs<T>
    this.argvFlagTokens = raw.flatMap((token) =>
      token.type === 'flag' ? [{flag: token.flag, input: token.input}] : [],
    )
    this.argvFlags = new Set(this.argvFlagTokens.map((token) => token.flag))
  }

  /** Aborted by the first SIGINT or SIGTERM; later ones are ignored until the command ends (its clean-up runs). */
  protected untilSignal(extra: NodeJS.Signals[] = []): AbortSignal {
    const controller = new AbortController()
    const stop = (): void => controller.abort()
    for (const name of ['SIGINT', 'SIGTERM', ...extra] as const) {
      process.on(name, stop)
      this.signalHandlers.push(() => process.off(name, stop))
    }

    return controller.signal
  }

  /** A diagnostic on stderr, never on stdout. */
  protected warnLine(message: string): void {
    process.stderr.write(`svc: ${message}\n`)
  }

  /** One event of a stream as one compact JSON line on stdout (NDJSON). */
  protected jsonLine(event: object): void {
    process.stdout.write(`${JSON.stringify(event)}\n`)
  }

  /** A single result as one compact JSON line: the README promises one line per result. */
  protected logJson(json: unknown): void {
    process.stdout.write(`${JSON.stringify(json)}\n`)
  }

  protected async catch(error: Error & {exitCode?: number; oclif?: {exit?: number}}): Promise<unknown> {
    if (error instanceof ExitError) throw error
    // a failed parse is reported here; oclif would add an "unparsed command" warning under NODE_ENV=test
    this.parsed = true
    if (process.env.DEBUG) process.stderr.write(`${error.stack ?? error}\n`)
    const reported = this.usageHint(error) ?? error
    const line = formatError(reported)
    process.exitCode = reported.oclif?.exit ?? reported.exitCode ?? 1
    if (this.jsonEnabled()) this.logJson({error: {name: reported.name, message: line, exitCode: process.exitCode}})
    process.stderr.write(`Error: ${line}\n`)
    return undefined
  }

  protected async finally(error: Error | undefined): Promise<unknown> {
    for (const off of this.signalHandlers.splice(0)) off()
    return super.finally(error)
  }

  /**
   * Registrator's single-dash long flags (-internal) named in their svc form; a bad value that came from a flag's
   * environment variable named as that variable, not as a flag the user never typed.
   */
  private usageHint(
    error: Error & {flags?: unknown},
  ): (Error & {exitCode?: number; oclif?: {exit?: number}}) | undefined {
    const failed = /^Parsing --([\w-]+) /.exec(error.message)?.[1]
    const flag = failed === undefined ? undefined : {...this.ctor.baseFlags, ...this.ctor.flags}[failed]
    if (flag?.env && !this.typed(failed!, flag.char)) {
      return Object.assign(new UserError(error.message.replace(`Parsing --${failed} `, `Parsing ${flag.env} `)), {
        oclif: {exit: 2},
      })
    }

    if (!Array.isArray(error.flags)) return undefined
    const known = Object.keys({...this.ctor.baseFlags, ...this.ctor.flags})
    for (const given of error.flags) {
      const long = typeof given === 'string' ? singleDashFlag(given, known) : undefined
      if (long) return new UserError(`unknown flag ${given}`, `long flags take two dashes: ${long}`)
    }

    return undefined
  }

  /** Whether the command line itself gives the flag (else oclif took it from the environment). */
  private typed(name: string, char: string | undefined): boolean {
    return this.argv.some(
      (a) => a === `--${name}` || a.startsWith(`--${name}=`) || (char !== undefined && a.startsWith(`-${char}`)),
    )
  }
}
