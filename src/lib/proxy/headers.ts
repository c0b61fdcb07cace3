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

/**
 * Which forwarding header this is: 1 for X-Forwarded-For, 2 for -Proto, 3 for -Host, 4 for Forwarded and X-Real-IP
 * (which svc does not set), 0 for any other header.
 */
export function forwardedKind(name: string): 0 | 1 | 2 | 3 | 4 {
  if (name.length === 9) {
    const lower = name.toLowerCase()
    return lower === 'forwarded' || lower === 'x-real-ip' ? 4 : 0
  }

  if (name.length < 15 || name.length > 17 || (name[0] !== 'x' && name[0] !== 'X')) return 0
  const lower = name.toLowerCase()
  if (lower === 'x-forwarded-for') return 1
  if (lower === 'x-forwarded-proto') return 2
  if (lower === 'x-forwarded-host') return 3
  return 0
}

/**
 * Fields that frame or route a message, or that this hop sets itself: a `Connection` header may never remove them
 * (listing Content-Length or Host there would otherwise let a client, or an upstream, make the two sides of the
 * proxy read different messages).
 */
const PROTECTED = new Set([
  'content-length',
  'forwarded',
  'host',
  'transfer-encoding',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-real-ip',
])

/** `name` (lower case) may not be removed by being listed in a Connection header. */
export function isProtected(lower: string): boolean {
  return PROTECTED.has(lower)
}

/**
 * Extra names a Connection header lists (other than close/keep-alive/upgrade and the protected fields), lower-cased;
 * undefined when none.
 */
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
    if (token === '' || token === 'close' || token === 'keep-alive' || token === 'upgrade' || PROTECTED.has(token))
      continue
    out ??= new Set()
    out.add(token)
  }

  return out
}

/** A request's head for the upstream, and what its headers say about the request. */
export interface UpstreamHead {
  /** The header lines to send, each ending in CRLF, X-Forwarded-* last; without the blank line that ends the head. */
  block: string
  /** The first Host header, if any. */
  host: string | undefined
  /** A non-zero Content-Length or a Transfer-Encoding was sent. */
  hasBody: boolean
  /** The body came with a Transfer-Encoding (chunked): it is sent on re-chunked. */
  chunked: boolean
  /** `Expect: 100-continue` was sent (this hop answers it). */
  expectContinue: boolean
  /** Host fields sent. */
  hosts: number
  /** Transfer-Encoding fields sent, and their values joined with ", ". */
  codings: number
  transferEncoding: string | undefined
}

interface RequestScan extends UpstreamHead {
  connection: string | undefined
  forwardedFor: string | undefined
  forwardedProto: string | undefined
  forwardedHost: string | undefined
}

/**
 * The request's header lines for the upstream in one pass over the raw [name, value, ...] list, so the request path
 * never builds node's header object: hop-by-hop headers dropped (and those the Connection header names: a second
 * pass, in the rare case it names any), then X-Forwarded-For, -Proto and -Host. From a client that is not a
 * `trusted` proxy, the forwarding headers it sent (X-Forwarded-*, Forwarded, X-Real-IP) are dropped and replaced,
 * so it cannot pass for another address; from a trusted one, X-Forwarded-For is appended to and the rest kept.
 * `keepUpgrade` keeps Connection and Upgrade for a WebSocket handshake; `proto` is the client's scheme (https on
 * the TLS listener).
 */
export function upstreamHeaders(
  raw: readonly string[],
  clientIp: string,
  keepUpgrade = false,
  trusted = false,
  proto: 'http' | 'https' = 'http',
): UpstreamHead {
  const scan = scanRequest(raw, keepUpgrade, undefined, trusted)
  const extra = connectionTokens(scan.connection)
  const head = extra === undefined ? scan : scanRequest(raw, keepUpgrade, extra, trusted)
  const {forwardedFor, forwardedProto, forwardedHost} = head
  head.block += 'x-forwarded-for: ' + (forwardedFor === undefined ? clientIp : forwardedFor + ', ' + clientIp) + '\r\n'
  head.block += 'x-forwarded-proto: ' + (forwardedProto ?? proto) + '\r\n'
  const host = forwardedHost ?? head.host
  if (host !== undefined) head.block += 'x-forwarded-host: ' + host + '\r\n'
  return head
}

/** One pass over a request's headers; `drop` holds the lower-cased names the Connection header listed. */
function scanRequest(
  raw: readonly string[],
  keepUpgrade: boolean,
  drop: Set<string> | undefined,
  trusted: boolean,
): RequestScan {
  const scan: RequestScan = {
    block: '',
    host: undefined,
    hasBody: false,
    chunked: false,
    expectContinue: false,
    hosts: 0,
    codings: 0,
    transferEncoding: undefined,
    connection: undefined,
    forwardedFor: undefined,
    forwardedProto: undefined,
    forwardedHost: undefined,
  }
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    const value = raw[i + 1]!
    if (isHopByHop(name)) scanHopByHop(scan, name, value, keepUpgrade)
    else {
      const kind = forwardedKind(name)
      if (kind === 0) scanEndToEnd(scan, name, value, drop)
      // an untrusted client's forwarding headers are dropped, never believed
      else if (trusted) scanForwarded(scan, kind, name, value, drop)
    }
  }

  return scan
}

/** A hop-by-hop request header: never forwarded as is, but it may frame the body or ask for an upgrade. */
function scanHopByHop(scan: RequestScan, name: string, value: string, keepUpgrade: boolean): void {
  switch (name.length) {
    case 6: {
      if (value.length === 12 && value.toLowerCase() === '100-continue') scan.expectContinue = true
      break
    }

    case 7: {
      if (keepUpgrade && name.toLowerCase() === 'upgrade') scan.block += name + ': ' + value + '\r\n'
      break
    }

    case 10: {
      if (name.toLowerCase() !== 'connection') break
      scan.connection = scan.connection === undefined ? value : scan.connection + ', ' + value
      if (keepUpgrade) scan.block += name + ': Upgrade\r\n'
      break
    }

    case 17: {
      scan.hasBody = true
      scan.chunked = true
      scan.codings++
      scan.transferEncoding = scan.transferEncoding === undefined ? value : scan.transferEncoding + ', ' + value
      break
    }
  }
}

/** A trusted client's forwarding header (forwardedKind, never 0): X-Forwarded-* merge into the proxy's own, others pass. */
function scanForwarded(
  scan: RequestScan,
  kind: 1 | 2 | 3 | 4,
  name: string,
  value: string,
  drop: Set<string> | undefined,
): void {
  switch (kind) {
    case 1: {
      scan.forwardedFor = scan.forwardedFor === undefined ? value : scan.forwardedFor + ', ' + value
      break
    }

    case 2: {
      scan.forwardedProto ??= value
      break
    }

    case 3: {
      scan.forwardedHost ??= value
      break
    }

    default: {
      if (drop === undefined || !drop.has(name.toLowerCase())) scan.block += name + ': ' + value + '\r\n'
    }
  }
}

/** An end-to-end request header: forwarded unless Connection named it; Host and Content-Length are noted. */
function scanEndToEnd(scan: RequestScan, name: string, value: string, drop: Set<string> | undefined): void {
  if (name.length === 4 && name.toLowerCase() === 'host') {
    scan.hosts++
    scan.host ??= value
  }
  // with Transfer-Encoding the parser refuses a Content-Length, so this is the framing
  else if (name.length === 14 && value !== '0' && name.toLowerCase() === 'content-length') scan.hasBody = true
  if (drop !== undefined && drop.has(name.toLowerCase())) return
  scan.block += name + ': ' + value + '\r\n'
}

/** A response's head for the client: its header lines, and how the upstream framed its body. */
export interface DownstreamHead {
  /** The header lines to send, each ending in CRLF, hop-by-hop headers dropped. */
  block: string
  /** A Content-Length was sent. */
  hasLength: boolean
  /** A Transfer-Encoding was sent. */
  chunked: boolean
  /** The Transfer-Encoding values, joined with ", ". */
  transferEncoding: string | undefined
}

/**
 * The response's header lines for the client from the parser's [name, value, ...] list: hop-by-hop headers dropped,
 * and those the Connection header names (a second pass, in the rare case it names any).
 */
export function downstreamHeaders(headers: readonly string[]): DownstreamHead {
  const head = scanResponse(headers, undefined)
  const extra = connectionTokens(head.connection)
  return extra === undefined ? head : scanResponse(headers, extra)
}

function scanResponse(
  headers: readonly string[],
  drop: Set<string> | undefined,
): DownstreamHead & {connection: string | undefined} {
  const head: DownstreamHead & {connection: string | undefined} = {
    block: '',
    hasLength: false,
    chunked: false,
    transferEncoding: undefined,
    connection: undefined,
  }
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!
    const value = headers[i + 1]!
    if (isHopByHop(name)) {
      if (name.length === 10 && name.toLowerCase() === 'connection') {
        head.connection = head.connection === undefined ? value : head.connection + ', ' + value
      } else if (name.length === 17) {
        head.chunked = true
        head.transferEncoding = head.transferEncoding === undefined ? value : head.transferEncoding + ', ' + value
      }

      continue
    }

    if (name.length === 14 && name.toLowerCase() === 'content-length') head.hasLength = true
    if (drop !== undefined && drop.has(name.toLowerCase())) continue
    head.block += name + ': ' + value + '\r\n'
  }

  return head
}

/** The client's scheme on a socket: https once the TLS listener handed it over (a TLSSocket), else http. */
export function schemeOf(socket: object): 'http' | 'https' {
  return 'encrypted' in socket && socket.encrypted === true ? 'https' : 'http'
}
