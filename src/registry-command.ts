import type {Command} from '@oclif/core/command'

import {SvcCommand} from './base-command.js'
import {type ConfigSource, withConfig} from './config-flags.js'
import {withBackendOrigin} from './lib/errors.js'
import {openRegistry} from './lib/registry/index.js'
import {type BackendFlagValues, type BackendSpec, specFromFlags} from './lib/registry/spec.js'
import type {Registry} from './lib/registry/types.js'
import {backendFlags} from './flags.js'

export type BackendSettings = BackendFlagValues & {profile?: string}

/** A command that talks to a registry: the backend flags, the spec they name with its origin, `registry()`. */
export abstract class RegistryCommand<T extends typeof Command> extends SvcCommand<T> {
  static baseFlags = {...SvcCommand.baseFlags, ...backendFlags}

  private openRegistries: Registry[] = []
  private origin: string | undefined

  /** The backend flags, filled in from `svc config` (flag > environment > profile > config default). */
  protected async backendSettings(): Promise<BackendSettings> {
    const {values} = await this.configured()
    return values
  }

  /** The backend spec the flags, the environment and the config name, with where its address came from. */
  protected async backendSpec(overrides: {backend?: string} = {}): Promise<BackendSpec> {
    const {source, values} = await this.configured()
    const backendOrigin = 'backend' in overrides ? undefined : this.valueOrigin('backend', source)
    try {
      const spec = specFromFlags({...values, ...overrides}, process.env, backendOrigin)
      this.origin = spec.origin
      return spec
    } catch (error) {
      throw source.blame(error)
    }
  }

  /** The registry the flags name; closed when the command ends. */
  protected async registry(): Promise<Registry> {
    const registry = await openRegistry(await this.backendSpec(), {log: (message) => this.warnLine(message)})
    this.openRegistries.push(registry)
    return registry
  }

  protected async catch(error: Error & {exitCode?: number; oclif?: {exit?: number}}): Promise<unknown> {
    return super.catch(this.origin === undefined ? error : (withBackendOrigin(error, this.origin) as Error))
  }

  protected async finally(error: Error | undefined): Promise<unknown> {
    const registries = this.openRegistries.splice(0)
    await Promise.allSettled(registries.map((r) => r.close()))
    return super.finally(error)
  }

  private configured(): Promise<{source: ConfigSource; values: BackendSettings}> {
    // every subclass has the backend flags (baseFlags above); T cannot say so inside this generic class
    this.settings ??= withConfig(this.flags as unknown as BackendSettings, this)
    return this.settings
  }

  private settings: Promise<{source: ConfigSource; values: BackendSettings}> | undefined

  /** Where a backend flag's value came from: the command line, its environment variable, or the config. */
  private valueOrigin(key: keyof typeof backendFlags, source: ConfigSource): string | undefined {
    if (this.argvFlags.has(key)) return `--${key}`
    const fromConfig = source.origin(key)
    if (fromConfig) return fromConfig
    const variable = backendFlags[key].env
    return variable !== undefined && process.env[variable] ? variable : undefined
  }
}
