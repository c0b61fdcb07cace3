import {
  chmodSync,
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs'
import {homedir} from 'node:os'
import path from 'node:path'

import {UserError} from '../errors.js'
import {hasErrorCode, isRecord} from '../guards.js'
import type {Env} from '../registry/spec.js'
import {randomHex} from '../random-hex.js'

/** What `svc config` keeps: backend settings by flag name, for every command and per named profile. */
export interface SvcConfig {
  /** The profile used when neither --profile nor SVC_PROFILE names one. */
  defaultProfile?: string
  /** Settings that apply under every profile (and without one). */
  defaults: Record<string, string>
  profiles: Record<string, Record<string, string>>
}

/** ${XDG_CONFIG_HOME:-~/.config}/svc/config.json */
export function configPath(env: Env = process.env): string {
  const base = env.XDG_CONFIG_HOME || path.join(env.HOME || homedir(), '.config')
  return path.join(base, 'svc', 'config.json')
}

export function emptyConfig(): SvcConfig {
  return {defaults: {}, profiles: {}}
}

/** Reads the config file; a missing file is an empty config, a corrupt one a one-line error naming the file. */
export function loadConfig(file: string = configPath()): SvcConfig {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    if (hasErrorCode(error, 'ENOENT')) return emptyConfig()
    throw new UserError(`cannot read the config file ${file}: ${(error as Error).message}`, 'check its permissions')
  }

  const fix = `fix it by hand, or remove it (rm ${file}) and set the values again with svc config set`
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (error) {
    throw new UserError(`the config file ${file} is not valid JSON (${(error as Error).message})`, fix)
  }

  const config = fromJson(raw)
  if (typeof config === 'string') throw new UserError(`the config file ${file} is malformed: ${config}`, fix)
  return config
}

/** Writes the config atomically, 0600 in a 0700 directory: it may hold a token. */
export function saveConfig(config: SvcConfig, file: string = configPath()): void {
  const dir = path.dirname(file)
  mkdirSync(dir, {recursive: true, mode: 0o700})
  chmodSync(dir, 0o700)
  const tmp = path.join(dir, `.config.json.${process.pid}.${randomHex(4)}`)
  try {
    const fd = openSync(tmp, 'wx', 0o600)
    try {
      writeSync(fd, `${JSON.stringify(toJson(config), null, 2)}\n`)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }

    renameSync(tmp, file)
  } catch (error) {
    rmSync(tmp, {force: true})
    throw error
  }
}

function toJson(config: SvcConfig): Record<string, unknown> {
  return {
    ...(config.defaultProfile === undefined ? {} : {'default-profile': config.defaultProfile}),
    defaults: config.defaults,
    profiles: config.profiles,
  }
}

const TOP_KEYS = new Set(['default-profile', 'defaults', 'profiles'])

/** The config from parsed JSON, or a description of what is wrong with it, naming the profile and the key. */
function fromJson(raw: unknown): string | SvcConfig {
  if (!isRecord(raw)) return 'expected a JSON object'
  const config = emptyConfig()
  const stray = Object.keys(raw).find((key) => !TOP_KEYS.has(key))
  if (stray !== undefined) {
    return `unknown key "${stray}" at the top level (settings go under "defaults", or "profiles" -> NAME)`
  }

  const defaultProfile = raw['default-profile']
  if (defaultProfile !== undefined) {
    if (typeof defaultProfile !== 'string') return '"default-profile" must be a string'
    config.defaultProfile = defaultProfile
  }

  const defaults = stringRecord(raw.defaults ?? {}, 'the shared settings ("defaults")')
  if (typeof defaults === 'string') return defaults
  config.defaults = defaults
  const profiles = raw.profiles ?? {}
  if (!isRecord(profiles)) return '"profiles" must be an object'
  for (const [name, settings] of Object.entries(profiles)) {
    const record = stringRecord(settings, `profile "${name}"`)
    if (typeof record === 'string') return record
    config.profiles[name] = record
  }

  return config
}

function stringRecord(value: unknown, where: string): Record<string, string> | string {
  if (!isRecord(value)) return `${where} must be an object of strings`
  const out: Record<string, string> = {}
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') return `${key} in ${where} must be a string, not ${JSON.stringify(v)}`
    out[key] = v
  }

  return out
}
