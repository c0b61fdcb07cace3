import {quote, UserError} from './errors.js'

/** The longest timer Node.js runs: a longer one fires at once. */
export const MAX_DURATION_MS = 2 ** 31 - 1

const UNITS: Record<string, number> = {ms: 1, s: 1000, m: 60_000, h: 3_600_000}

const FORMS = 'write it with a unit: 500ms, 10s, 1m or 1h'

/** Parses `500ms`, `10s`, `1.5m`, `1h` into milliseconds; a bare number is refused, its unit would be a guess. */
export function parseDuration(text: string, what = 'duration'): number {
  const trimmed = text.trim()
  if (/^\d+(?:\.\d+)?$/.test(trimmed)) {
    throw new UserError(
      `invalid ${what} ${quote(text)} (no unit)`,
      `write it as ${trimmed}ms, ${trimmed}s, or with m or h`,
    )
  }

  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(trimmed)
  if (!match) throw new UserError(`invalid ${what} ${quote(text)}`, FORMS)
  // rounded before the checks: 0.1ms would otherwise pass as "above zero" and come out as 0
  const ms = Math.round(Number(match[1]) * UNITS[match[2]!]!)
  if (ms < 1) throw new UserError(`invalid ${what} ${quote(text)}`, 'it must be at least 1ms')
  if (ms > MAX_DURATION_MS) throw new UserError(`invalid ${what} ${quote(text)}`, 'it must be at most 596h')
  return ms
}

/** A flag default as text that parseDuration reads back exactly: 5000 -> 5s, 1500 -> 1500ms, 90000 -> 90s. */
export function durationText(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`
  if (ms % 60_000 === 0 && ms >= 600_000) return `${ms / 60_000}m`
  if (ms % 1000 === 0) return `${ms / 1000}s`
  return `${ms}ms`
}

/** A measured time for people: 850ms, 5.4s, 1m3s. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(1))}s`
  return `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`
}
