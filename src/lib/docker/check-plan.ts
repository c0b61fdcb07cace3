/** Registrator-style health checks for a container port: which SERVICE_CHECK_ setting wins, and its durations. */
import {quote} from '../errors.js'
import type {CheckSpec} from '../registry/types.js'

export const DEFAULT_CHECK_INTERVAL_MS = 10_000
export const DEFAULT_CHECK_TIMEOUT_MS = 5000
/** Registrator check kinds svc cannot run: reported, never turned into meta. */
export const UNSUPPORTED_CHECKS = ['check_script', 'check_cmd', 'check_docker', 'check_initial_status']

const FALSE_WORDS = new Set(['0', 'false', 'no', 'off'])

/** A SERVICE_ setting as a check reads it: its value, and where it came from for messages. */
export interface SettingValue {
  value: string
  source: string
}

/**
 * Go's time.ParseDuration forms (`300ms`, `1.5h`, `1m30s`, `2h45m`, units ns us µs ms s m h), plus a bare number
 * of seconds, in milliseconds; undefined when malformed. Signs are not accepted.
 */
export function parseGoDuration(text: string): number | undefined {
  const value = text.trim()
  if (/^(?:\d+(?:\.\d*)?|\.\d+)$/.test(value)) return Number(value) * 1000
  if (value === '') return undefined
  const part = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y
  let total = 0
  let index = 0
  while (index < value.length) {
    part.lastIndex = index
    const match = part.exec(value)
    if (!match) return undefined
    total += Number(match[1]) * GO_UNITS[match[2]!]!
    index = part.lastIndex
  }

  return total
}

const GO_UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
}

function durationSetting(setting: SettingValue | undefined, warn: (m: string) => void): number | undefined {
  if (!setting?.value) return undefined
  const ms = parseGoDuration(setting.value)
  const rounded = ms === undefined ? 0 : Math.round(ms)
  if (rounded >= 1) return rounded
  warn(`${setting.source} ${quote(setting.value)} ignored: write a duration such as 10s, 1m30s or 500ms`)
  return undefined
}

function hostForUrl(address: string): string {
  return address.includes(':') ? `[${address}]` : address
}

/** Registrator's one check per service, first of HTTP, HTTPS, TTL, TCP. */
export function planCheck(
  get: (key: string) => SettingValue | undefined,
  address: string,
  port: number,
  warn: (m: string) => void,
): {check?: CheckSpec; ttlMs?: number} {
  for (const key of UNSUPPORTED_CHECKS) {
    const setting = get(key)
    if (setting?.value) warn(`${setting.source} ignored: svc runs HTTP, HTTPS, TCP and TTL checks only`)
  }

  const kinds = ['check_http', 'check_https', 'check_ttl', 'check_tcp'] as const
  const given = kinds
    .map((kind) => ({kind, setting: get(kind)}))
    .filter(
      (k): k is {kind: (typeof kinds)[number]; setting: SettingValue} =>
        Boolean(k.setting?.value) && !(k.kind === 'check_tcp' && FALSE_WORDS.has(k.setting!.value.toLowerCase())),
    )
  const chosen = given[0]
  if (!chosen) return {}
  for (const other of given.slice(1))
    warn(`${other.setting.source} ignored: ${chosen.setting.source} is the check (one check per service)`)

  if (chosen.kind === 'check_ttl') {
    const ttlMs = durationSetting(chosen.setting, warn)
    return ttlMs === undefined ? {} : {ttlMs}
  }

  const target = `${hostForUrl(address)}:${port}`
  const check: CheckSpec = {
    intervalMs: durationSetting(get('check_interval'), warn) ?? DEFAULT_CHECK_INTERVAL_MS,
    timeoutMs: durationSetting(get('check_timeout'), warn) ?? DEFAULT_CHECK_TIMEOUT_MS,
  }
  const deregisterAfterMs = durationSetting(get('check_deregister_after'), warn)
  if (deregisterAfterMs !== undefined) check.deregisterAfterMs = deregisterAfterMs
  if (chosen.kind === 'check_tcp') return {check: {tcp: target, ...check}}

  const {value, source} = chosen.setting
  const scheme = chosen.kind === 'check_https' ? 'https' : 'http'
  const url = /^https?:\/\//i.test(value) ? value : `${scheme}://${target}${value.startsWith('/') ? '' : '/'}${value}`
  if (!URL.canParse(url)) {
    warn(`${source} ${quote(value)} ignored: not a path or an http(s) URL`)
    return {}
  }

  return {check: {http: url, ...check}}
}
