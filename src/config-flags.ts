import type {Command, Interfaces} from '@oclif/core'
import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'

import {
  activeProfile,
  configPath,
  configuredValues,
  DEFAULT_PROFILE_KEY,
  loadConfig,
  validateKey,
} from './lib/config/index.js'
import {formatError, UserError} from './lib/errors.js'
import {backendFlags} from './flags.js'

/** The backend flags' names that `svc config` stores (every backend flag but --profile itself). */
export const CONFIG_KEYS: readonly string[] = Object.keys(backendFlags).filter((key) => key !== 'profile')

type AnyFlag = Interfaces.Flag<unknown>

/** A stored string turned into the flag's value by the flag's own parser, so the config is validated like a flag. */
export async function parseConfigValue(key: string, raw: string, command: Command): Promise<unknown> {
  const flag = (backendFlags as Record<string, AnyFlag>)[key]
  if (!flag) return undefined
  if (flag.type === 'boolean') {
    if (raw !== 'true' && raw !== 'false') throw new UserError(`${key} must be true or false, not "${raw}"`)
    return raw === 'true'
  }

  // a child of the command, so the parser's context does not overwrite anything on the command itself
  const context = Object.assign(Object.create(command) as Command, {
    token: {type: 'flag' as const, flag: key, input: raw},
  })
  return flag.parse(raw, context, flag)
}

/** Which config values a command used, and how to name them in its errors. */
export interface ConfigSource {
  /** `backend in profile "prod" of FILE`, or undefined when the key did not come from the config. */
  origin(key: string): string | undefined
  /** The error with the config values it may stem from named, so that it does not blame a flag never given. */
  blame(error: unknown): unknown
}

/** The parsed backend flags with the svc config's values where flag and environment left a key unset. */
export async function withConfig<F extends {profile?: string}>(
  flags: F,
  command: Command,
): Promise<{source: ConfigSource; values: F}> {
  const file = configPath()
  const config = loadConfig(file)
  const profile = activeProfile(config, flags.profile)
  const values = configuredValues(config, flags, profile)
  const inProfile = (key: string): boolean => profile !== undefined && config.profiles[profile]?.[key] !== undefined
  const where = (key: string): string =>
    `${key} in ${inProfile(key) ? `profile "${profile}"` : 'the shared settings'} of ${file}`
  const out: Record<string, unknown> = {...flags}
  for (const [key, raw] of Object.entries(values)) {
    try {
      out[key] = await parseConfigValue(key, raw, command)
    } catch (error) {
      throw new UserError(
        `invalid ${where(key)}: ${formatError(error)}`,
        `fix it with: svc config set ${key} VALUE${inProfile(key) ? ` --profile ${profile}` : ''}`,
      )
    }
  }

  const used = Object.keys(values)
  const source: ConfigSource = {
    origin: (key) => (used.includes(key) ? where(key) : undefined),
    blame(error) {
      if (!(error instanceof UserError) || used.length === 0) return error
      return new UserError(`${error.message} (from the config: ${used.map((k) => where(k)).join('; ')})`, error.hint)
    },
  }
  return {source, values: out as F}
}

/** The base backend flags, hidden: `svc config` edits settings rather than using them. */
export const hiddenBackendFlags = Object.fromEntries(
  Object.entries(backendFlags).map(([key, flag]) => [key, {...flag, hidden: true}]),
) as typeof backendFlags

/** `--profile` for `svc config`: which profile to edit (no SVC_PROFILE: edits name their target). */
export const editProfileFlag = Flags.string({
  char: 'p',
  description: 'the profile to read or change (default: the settings shared by every profile)',
})

/** The KEY argument of `svc config get|set|unset`. */
export const configKeyArg = Args.string({
  description: `${DEFAULT_PROFILE_KEY} or a backend flag: ${CONFIG_KEYS.join(', ')}`,
  required: true,
})

/** The KEY argument checked: default-profile or a backend flag's name. */
export function configKey(arg: string): string {
  return arg === DEFAULT_PROFILE_KEY ? DEFAULT_PROFILE_KEY : validateKey(arg, CONFIG_KEYS)
}
