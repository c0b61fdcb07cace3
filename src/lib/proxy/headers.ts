/**
 * Header rewriting on the request path. Names are compared by length first and lower-cased only on a length
 * match, so most headers cost one switch.
 */

/** Headers that describe one hop and are never forwarded (RFC 9110 section 7.6.1), plus Expect, which this hop answers. */
export function isHopByHop(name: string): boolean {
  switch (name.length) {
    case 2: {
      return name.toLowerCase() === 'te'
    }

    case 6: {
      return name.toLowerCase() === 'expect'
    }

    case 7: {
      const lower = name.toLowerCase()
      return lower === 'trailer' || lower === 'upgrade'
    }

    case 10: {
      const lower = name.toLowerCase()
      return lower === 'connection' || lower === 'keep-alive'
    }

    case 17: {
      return name.toLowerCase() === 'transfer-encoding'
    }

    default: {
      return name.length > 6 && (name[0] === 'p' || name[0] === 'P') && name.slice(0, 6).toLowerCase() === 'proxy-'
    }
  }
}

/** Which X-Forwarded-* header this is: 1 for -For, 2 for -Proto, 3 for -Host, 0 for none. */
export function forwardedKind(name: string): 0 | 1 | 2 | 3 {
  if (name.length < 15 || name.length > 17 || (name[0] !== 'x' && name[0] !== 'X')) return 0
  const lower = name.toLowerCase()
  if (lower === 'x-forwarded-for') return 1
  if (lower === 'x-forwarded-proto') return 2
  if (lower === 'x-forwarded-host') return 3
  return 0
}

/** Extra names a Connection header lists (other than close/keep-alive/upgrade), lower-cased; undefined when none. */
export function connectionTokens(value: string | undefined): Set<string> | undefined {
  if (value === undefined) return undefined
  // the usual values, keep-alive and close, list nothing
  if (value.length === 10 || value.length === 5) {
    const lower = value.toLowerCase()
    if (lower === 'keep-alive' || lower === 'close') return undefined
  }

  let out: Set<string> | undefined
  for (const raw of value.split(',')) {
    const token = raw.trim().toLowerCase()
    if (token === '' || token === 'close' || token === 'keep-alive' || token === 'upgrade') continue
    out ??= new Set()
    out.add(token)
  }

  return out
}

/** A request's headers for the upstream, and whether the request has a body. */
export interface UpstreamHead {
  headers: string[]
  /** A non-zero Content-Length or a Transfer-Encoding was sent. */
  hasBody: boolean
}

/**
 * The headers to send upstream as a flat [name, value, ...] list: hop-by-hop headers dropped (and those the
 * Connection header names), X-Forwarded-For appended to, X-Forwarded-Proto and -Host set. `keepUpgrade` keeps
 * Connection and Upgrade for a WebSocket handshake. One pass over the raw headers, so the request path never
 * builds node's header object.
 */
export function upstreamHeaders(raw: readonly string[], clientIp: string, keepUpgrade = false): UpstreamHead {
  let headers: string[] = []
  let connection: string | undefined
  let hasBody = false
  let forwardedFor: string | undefined
  let host: string | undefined
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    const value = raw[i + 1]!
    if (isHopByHop(name)) {
      const lower = name.length === 10 || name.length === 7 || name.length === 17 ? name.toLowerCase() : ''
      if (lower === 'connection') {
        connection = connection === undefined ? value : `${connection}, ${value}`
        if (keepUpgrade) headers.push(name, 'Upgrade')
      } else if (lower === 'transfer-encoding') hasBody = true
      else if (keepUpgrade && lower === 'upgrade') headers.push(name, value)
      continue
    }

    const kind = forwardedKind(name)
    if (kind === 1) {
      forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`
      continue
    }

    if (kind !== 0) continue
    if (name.length === 4 && host === undefined && name.toLowerCase() === 'host') host = value
    else if (name.length === 14 && value !== '0' && name.toLowerCase() === 'content-length') hasBody = true
    headers.push(name, value)
  }

  const extra = connectionTokens(connection)
  if (extra !== undefined) {
    const kept: string[] = []
    for (let i = 0; i < headers.length; i += 2) {
      if (!extra.has(headers[i]!.toLowerCase())) kept.push(headers[i]!, headers[i + 1]!)
    }

    headers = kept
  }

  headers.push(
    'x-forwarded-for',
    forwardedFor === undefined ? clientIp : `${forwardedFor}, ${clientIp}`,
    'x-forwarded-proto',
    'http',
  )
  if (host !== undefined) headers.push('x-forwarded-host', host)
  return {headers, hasBody}
}

/**
 * A response's headers for the client from raw [name, value, ...] buffers, hop-by-hop headers dropped.
 * `head.contentLength` gets the Content-Length (-1 when there is none).
 */
export function downstreamHeaders(raw: readonly Buffer[], head?: {contentLength: number}): string[] {
  const out: string[] = []
  let extra: Set<string> | undefined
  let contentLength = -1
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1')
    if (isHopByHop(name)) {
      if (name.length === 10 && name.toLowerCase() === 'connection')
        extra = connectionTokens(raw[i + 1]!.toString('latin1'))
      continue
    }

    const value = raw[i + 1]!.toString('latin1')
    if (name.length === 14 && name.toLowerCase() === 'content-length') contentLength = Number(value)
    out.push(name, value)
  }

  if (head !== undefined) head.contentLength = contentLength

  if (extra === undefined) return out
  const kept: string[] = []
  for (let i = 0; i < out.length; i += 2) if (!extra.has(out[i]!.toLowerCase())) kept.push(out[i]!, out[i + 1]!)
  return kept
}
