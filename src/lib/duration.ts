import {UserError} from './errors.js'

const UNITS: Record<string, number> = {ms: 1, s: 1000, m: 60_000, h: 3_600_000}

/** Parses `500ms`, `10s`, `1m`, `1h` or a bare number of seconds into milliseconds. */
export function parseDuration(text: string, what = 'duration'): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim())
  if (!match) throw new UserError(`invalid ${what} "${text}"`, 'write it as 500ms, 10s, 1m or a number of seconds')
  const ms = Number(match[1]) * UNITS[match[2] ?? 's']!
  if (ms <= 0) throw new UserError(`invalid ${what} "${text}"`, 'it must be greater than zero')
  return Math.round(ms)
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(1))}s`
  return `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`
}
