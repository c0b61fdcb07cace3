import {quote, UserError} from './errors.js'

/** The longest timer Node.js runs: a longer one fires at once. */
export const MAX_DURATION_MS = 2 ** 31 - 1

const UNITS: Record<string, number> = {ms: 1, s: 1000, m: 60_000, h: 3_600_000}

/** Parses `500ms`, `10s`, `1m`, `1h` or a bare number of seconds into milliseconds. */
export function parseDuration(text: string, what = 'duration'): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim())
  if (!match) throw new UserError(`invalid ${what} ${quote(text)}`, 'write it as 500ms, 10s, 1m or a number of seconds')
  // rounded before the checks: 0.1ms would otherwise pass as "above zero" and come out as 0
  const ms = Math.round(Number(match[1]) * UNITS[match[2] ?? 's']!)
  if (ms < 1) throw new UserError(`invalid ${what} ${quote(text)}`, 'it must be at least 1ms')
  if (ms > MAX_DURATION_MS) throw new UserError(`invalid ${what} ${quote(text)}`, 'it must be at most 596h')
  return ms
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(1))}s`
  return `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`
}
