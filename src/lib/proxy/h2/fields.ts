import type {IncomingHttpHeaders, OutgoingHttpHeaders} from 'node:http2'

import {downstreamHeaders, upstreamHeaders} from '../headers.js'
import {fieldsOf} from '../node-http-support.js'

/** An HTTP/2 request's fields for the upstream: the HTTP/1 engines' rules (hop-by-hop dropped, X-Forwarded-*). */
export interface ForwardFields {
  /** Flat [name, value, ...] list, `host` first, for an HTTP/1.1 upstream. */
  h1: string[]
  /** The same as HTTP/1.1 header lines, each ending in CRLF, without the blank line that ends the head. */
  block: string
  /** The same as an HTTP/2 header object (lower-case names, pseudo-headers set), for an h2c upstream. */
  h2: OutgoingHttpHeaders
}

/**
 * Translates a client's HTTP/2 request head (`raw`: the flat list node:http2 hands the 'stream' event) into what
 * the upstream gets: pseudo-headers become the request line and Host, X-Forwarded-Proto says https over TLS.
 */
export function forwardFields(
  raw: readonly string[],
  head: {method: string; path: string; authority: string | undefined; clientIp: string; trusted: boolean; tls: boolean},
): ForwardFields {
  const regular: string[] = []
  let trailers = false
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!
    if (name.startsWith(':')) continue
    // TE: trailers is the one TE an HTTP/2 request may carry, and gRPC servers insist on it
    if (name === 'te' && raw[i + 1]!.includes('trailers')) trailers = true
    regular.push(name, raw[i + 1]!)
  }

  if (head.authority !== undefined && !regular.includes('host')) regular.push('host', head.authority)
  const {block} = upstreamHeaders(regular, head.clientIp, false, head.trusted, head.tls ? 'https' : 'http')
  const fields = fieldsOf(block)

  const h2: OutgoingHttpHeaders = {
    ':method': head.method,
    ':path': head.path,
    ':scheme': 'http',
  }
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i]!.toLowerCase()
    if (name === 'host') {
      h2[':authority'] = fields[i + 1]!
      continue
    }

    addField(h2, name, fields[i + 1]!)
  }

  if (trailers) h2.te = 'trailers'
  return {h1: fields, block, h2}
}

/** An HTTP/1.1 upstream's response head (raw list) as HTTP/2 response headers, hop-by-hop fields dropped. */
export function h1ResponseHeaders(status: number, raw: readonly string[]): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {':status': status}
  const fields = fieldsOf(downstreamHeaders(raw).block)
  for (let i = 0; i < fields.length; i += 2) addField(out, fields[i]!.toLowerCase(), fields[i + 1]!)
  return out
}

/** An HTTP/1.1 upstream's trailers as HTTP/2 trailers. */
export function h1Trailers(raw: readonly string[]): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {}
  const fields = fieldsOf(downstreamHeaders(raw).block)
  for (let i = 0; i < fields.length; i += 2) addField(out, fields[i]!.toLowerCase(), fields[i + 1]!)
  return out
}

const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade'])

/** An h2c upstream's response headers or trailers for the client: pseudo-headers other than :status dropped. */
export function h2Forwarded(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || CONNECTION_SPECIFIC.has(name)) continue
    if (name.startsWith(':') && name !== ':status') continue
    out[name] = value
  }

  return out
}

function addField(out: OutgoingHttpHeaders, name: string, value: string): void {
  if (CONNECTION_SPECIFIC.has(name)) return
  const current = out[name]
  if (current === undefined) out[name] = value
  else if (Array.isArray(current)) current.push(value)
  else out[name] = name === 'cookie' ? `${String(current)}; ${value}` : [String(current), value]
}
