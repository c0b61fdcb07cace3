/** What the access log knows of one request, whichever engine served it. */
export interface AccessRecord {
  remote: string
  method: string
  target: string
  /** `HTTP/1.1`, `HTTP/1.0` */
  protocol: string
  status: number
  /** Response body bytes sent to the client (nginx's $body_bytes_sent). */
  bytes: number
  /** From the request's head to its settlement, in ms. */
  ms: number
  service: string
  /** host:port of the instance that served it; undefined when the proxy answered itself. */
  upstream: string | undefined
  /** From the request going upstream to the response's end, in ms (nginx's $upstream_response_time). */
  upstreamMs: number | undefined
  referer: string | undefined
  userAgent: string | undefined
}

/** `svc`: the line svc always wrote, bytes and upstream time appended; `combined`: NCSA combined + upstream fields. */
export const ACCESS_LOG_FORMATS = ['svc', 'combined', 'json'] as const
export type AccessLogFormat = (typeof ACCESS_LOG_FORMATS)[number]

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']

function two(n: number): string {
  return n < 10 ? `0${n}` : String(n)
}

/** nginx's $time_local: `04/Dec/2026:21:17:19 +0000`. */
export function timeLocal(date: Date): string {
  const offset = -date.getTimezoneOffset()
  const sign = offset < 0 ? '-' : '+'
  const abs = Math.abs(offset)
  return (
    `${two(date.getDate())}/${MONTHS[date.getMonth()]}/${date.getFullYear()}:` +
    `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())} ` +
    `${sign}${two(Math.floor(abs / 60))}${two(abs % 60)}`
  )
}

/** A value inside a combined line's quotes, escaped as nginx does: `"`, `\` and bytes outside printable ASCII as \xHH. */
export function escapeField(value: string): string {
  let out = ''
  let from = 0
  for (let i = 0; i < value.length; i++) {
    const c = value.codePointAt(i)!
    if (c >= 0x20 && c < 0x7f && c !== 0x22 && c !== 0x5c) continue
    out += value.slice(from, i) + String.raw`\x` + (c > 0xff ? 0x3f : c).toString(16).toUpperCase().padStart(2, '0')
    from = i + 1
  }

  return from === 0 ? value : out + value.slice(from)
}

function seconds(ms: number | undefined): string {
  return ms === undefined ? '-' : (ms / 1000).toFixed(3)
}

/**
 * Caches the per-second part of each line (formatting a date costs more than the rest of a line): the clock is read
 * once a request, the text rebuilt once a second.
 */
export class AccessFormatter {
  private second = -1
  private stamp = ''

  constructor(readonly format: AccessLogFormat) {}

  line(r: AccessRecord, now = Date.now()): string {
    switch (this.format) {
      case 'combined': {
        return (
          `${r.remote || '-'} - - [${this.time(now)}] "${escapeField(`${r.method} ${r.target} ${r.protocol}`)}" ` +
          `${r.status} ${r.bytes} "${escapeField(r.referer ?? '-')}" "${escapeField(r.userAgent ?? '-')}" ` +
          `${r.upstream ?? '-'} ${seconds(r.upstreamMs)} ${seconds(r.ms)}`
        )
      }

      case 'json': {
        return JSON.stringify({
          time: new Date(now).toISOString(),
          remote: r.remote,
          method: r.method,
          target: r.target,
          protocol: r.protocol,
          status: r.status,
          bytes: r.bytes,
          durationMs: round(r.ms),
          service: r.service,
          upstreamAddr: r.upstream ?? null,
          upstreamMs: r.upstreamMs === undefined ? null : round(r.upstreamMs),
          referer: r.referer ?? null,
          userAgent: r.userAgent ?? null,
        })
      }

      default: {
        return (
          `${new Date(now).toISOString()} ${r.remote || '-'} "${r.method} ${r.target} ${r.protocol}" ${r.status} ` +
          `${r.ms.toFixed(1)}ms ${r.service} ${r.upstream ?? '-'} ${r.bytes}B ` +
          (r.upstreamMs === undefined ? '-' : `${r.upstreamMs.toFixed(1)}ms`)
        )
      }
    }
  }

  private time(now: number): string {
    const second = Math.floor(now / 1000)
    if (second !== this.second) {
      this.second = second
      this.stamp = timeLocal(new Date(now))
    }

    return this.stamp
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000
}

/** The Referer and User-Agent of a raw header list ([name, value, ...]), read only when the log wants them. */
export function refererAndAgent(raw: readonly string[]): {referer: string | undefined; userAgent: string | undefined} {
  let referer: string | undefined
  let userAgent: string | undefined
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!
    if (name.length === 7 && referer === undefined && name.toLowerCase() === 'referer') referer = raw[i + 1]
    else if (name.length === 10 && userAgent === undefined && name.toLowerCase() === 'user-agent')
      userAgent = raw[i + 1]
  }

  return {referer, userAgent}
}
