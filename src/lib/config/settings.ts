import {NotFoundError, UserError} from '../errors.js'
import {redactUri} from '../registry/spec.js'
import type {SvcConfig} from './file.js'

/** The key that picks the profile used when none is named. */
export const DEFAULT_PROFILE_KEY = 'default-profile'

const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/
// token, zk-auth, password...: values that must not be printed by `svc config list`
const SECRET_KEY = /(^|-)(token|password|secret|auth)$/

export function validateProfileName(name: string): string {
  if (!PROFILE_NAME.test(name)) {
    throw new UserError(
      `invalid profile name "${name}"`,
      'use letters, digits, ".", "_" or "-" (up to 64 characters, starting with a letter or digit)',
    )
  }

  return name
}

/** A settable key: one of the backend flags' names (without dashes), checked against `known`. */
export function validateKey(key: string, known: readonly string[]): string {
  const bare = key.replace(/^--/, '')
  if (!known.includes(bare)) {
    throw new UserError(`unknown setting "${key}"`, `use one of: ${[DEFAULT_PROFILE_KEY, ...known].join(', ')}`)
  }

  return bare
}

export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key)
}

/** The value to print for a key in listings: secrets hidden, and a backend URI's password too (`user:***@`). */
export function displayValue(key: string, value: string): string {
  if (key === 'backend') return redactUri(value)
  return isSecretKey(key) && value !== '' ? '***' : value
}

/** The profile in effect: --profile / SVC_PROFILE, else the config's default profile; it must exist. */
export function activeProfile(config: SvcConfig, named: string | undefined): string | undefined {
  const name = named === undefined || named === '' ? config.defaultProfile : named
  if (name === undefined) return undefined
  if (!config.profiles[name]) {
    const known = Object.keys(config.profiles)
    throw new UserError(
      `no profile "${name}" in the svc config`,
      known.length > 0
        ? `use one of: ${known.join(', ')}, or create it with: svc config set backend URI --profile ${name}`
        : `create it with: svc config set backend URI --profile ${name}`,
    )
  }

  return name
}

/**
 * The config's values for the keys that flags and environment left unset: flag beats environment (oclif merges
 * both into `given`) beats the active profile beats the config's defaults.
 */
export function configuredValues(
  config: SvcConfig,
  given: Record<string, unknown>,
  profile: string | undefined,
): Record<string, string> {
  const fromProfile = profile === undefined ? {} : (config.profiles[profile] ?? {})
  const out: Record<string, string> = {}
  for (const [key, value] of Object.entries({...config.defaults, ...fromProfile})) {
    const current = given[key]
    if (current === undefined || current === '') out[key] = value
  }

  return out
}

/** Sets a key in the defaults or in a profile (created on first use). */
export function setValue(config: SvcConfig, key: string, value: string, profile?: string): SvcConfig {
  if (key === DEFAULT_PROFILE_KEY) {
    if (profile !== undefined) throw new UserError(`${DEFAULT_PROFILE_KEY} is not a profile setting`, 'drop --profile')
    activeProfile(config, validateProfileName(value))
    return {...config, defaultProfile: value}
  }

  if (profile === undefined) return {...config, defaults: {...config.defaults, [key]: value}}
  validateProfileName(profile)
  return {...config, profiles: {...config.profiles, [profile]: {...config.profiles[profile], [key]: value}}}
}

/** The stored value of a key, or a NotFoundError naming how to set it. */
export function getValue(config: SvcConfig, key: string, profile?: string): string {
  if (profile !== undefined && key !== DEFAULT_PROFILE_KEY) activeProfile(config, profile)
  const value =
    key === DEFAULT_PROFILE_KEY
      ? config.defaultProfile
      : profile === undefined
        ? config.defaults[key]
        : config.profiles[profile]?.[key]
  if (value === undefined) {
    const where = profile === undefined ? '' : ` --profile ${profile}`
    throw new NotFoundError(
      `${key} is not set${profile === undefined ? '' : ` in profile "${profile}"`}`,
      `set it with: svc config set ${key} VALUE${where}`,
    )
  }

  return value
}

/** Removes a key; a profile left empty is removed, and the default profile with it. */
export function unsetValue(config: SvcConfig, key: string, profile?: string): SvcConfig {
  getValue(config, key, profile)
  if (key === DEFAULT_PROFILE_KEY) return {defaults: config.defaults, profiles: config.profiles}
  if (profile === undefined) {
    const defaults = {...config.defaults}
    delete defaults[key]
    return {...config, defaults}
  }

  const rest = {...config.profiles[profile]}
  delete rest[key]
  const profiles = {...config.profiles, [profile]: rest}
  if (Object.keys(rest).length > 0) return {...config, profiles}
  delete profiles[profile]
  const next: SvcConfig = {...config, profiles}
  if (next.defaultProfile === profile) delete next.defaultProfile
  return next
}

export interface ConfigRow {
  profile: string
  key: string
  value: string
}

/** Every stored setting as rows, secrets redacted; the defaults' profile column is empty. */
export function listRows(config: SvcConfig): ConfigRow[] {
  const rows: ConfigRow[] = []
  if (config.defaultProfile !== undefined)
    rows.push({profile: '', key: DEFAULT_PROFILE_KEY, value: config.defaultProfile})
  for (const [key, value] of Object.entries(config.defaults))
    rows.push({profile: '', key, value: displayValue(key, value)})
  for (const [profile, settings] of Object.entries(config.profiles)) {
    for (const [key, value] of Object.entries(settings)) rows.push({profile, key, value: displayValue(key, value)})
  }

  return rows
}
