import type {Interfaces} from '@oclif/core'
import {Command} from '@oclif/core/command'
import {ExitError} from '@oclif/core/errors'

import {formatError} from './lib/errors.js'
import {openRegistry} from './lib/registry/index.js'
import {specFromFlags} from './lib/registry/spec.js'
import type {Registry} from './lib/registry/types.js'
import {backendFlags} from './flags.js'

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<
  (typeof SvcCommand)['baseFlags'] & T['flags']
>
export type BaseArgs<T extends typeof Command> = Interfaces.InferredArgs<T['args']>

/** Owns what every svc command shares: backend flags, opening and closing the registry, one-line errors. */
export abstract class SvcCommand<T extends typeof Command> extends Command {
  static baseFlags = {...backendFlags}

  protected flags!: BaseFlags<T>
  protected args!: BaseArgs<T>
  private openRegistries: Registry[] = []

  async init(): Promise<void> {
    await super.init()
    const {args, flags} = await this.parse({
      args: this.ctor.args,
      baseFlags: (super.ctor as typeof SvcCommand).baseFlags,
      enableJsonFlag: this.ctor.enableJsonFlag,
      flags: this.ctor.flags,
      strict: this.ctor.strict,
    })
    this.flags = flags as BaseFlags<T>
    this.args = args as BaseArgs<T>
  }

  /** The registry the flags name; closed when the command ends. */
  protected async registry(): Promise<Registry> {
    const registry = await openRegistry(specFromFlags(this.flags, process.env), {
      log: (message) => this.warnLine(message),
    })
    this.openRegistries.push(registry)
    return registry
  }

  /** A diagnostic on stderr, never on stdout. */
  protected warnLine(message: string): void {
    process.stderr.write(`svc: ${message}\n`)
  }

  protected async catch(error: Error & {exitCode?: number; oclif?: {exit?: number}}): Promise<unknown> {
    if (error instanceof ExitError) throw error
    // a failed parse is reported here; oclif would add an "unparsed command" warning under NODE_ENV=test
    this.parsed = true
    if (process.env.DEBUG) process.stderr.write(`${error.stack ?? error}\n`)
    const line = formatError(error)
    process.exitCode = error.oclif?.exit ?? error.exitCode ?? 1
    if (this.jsonEnabled()) this.logJson({error: {name: error.name, message: line, exitCode: process.exitCode}})
    process.stderr.write(`Error: ${line}\n`)
    return undefined
  }

  protected async finally(error: Error | undefined): Promise<unknown> {
    const registries = this.openRegistries
    this.openRegistries = []
    await Promise.allSettled(registries.map((r) => r.close()))
    return super.finally(error)
  }
}
