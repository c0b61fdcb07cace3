/**
 * The one place that decides what a message's framing is, on each side of the proxy. llhttp (strict for clients)
 * has already refused what it can see alone: Content-Length with Transfer-Encoding, duplicate or malformed
 * Content-Length, obs-fold, bad chunk sizes, NUL and bare CR/LF. What it lets through and is decided here: the HTTP
 * version, Transfer-Encoding codings, Host (RFC 9112 sections 3.2 and 6.1), and an Upgrade that carries a body.
 */
import type {DownstreamHead, UpstreamHead} from './headers.js'

/** Why a request is answered by the proxy itself; the connection always closes after the answer. */
export interface FramingRefusal {
  status: number
  error: string
}

/** A Host value: a reg-name or IPv4 address, or a bracketed IPv6 literal, with an optional port (RFC 3986). */
const HOST = /^(?:\[[\d.:A-Fa-f]+\]|[\w!$%&'()*+,.;=~-]+)(?::\d{0,5})?$/

/**
 * What is wrong with a request's framing, or undefined when its body and target can be forwarded as parsed. `head`
 * is the scan of its header fields; `upgrade` is llhttp's verdict (Connection: upgrade with an Upgrade field).
 */
export function requestRefusal(
  major: number,
  minor: number,
  head: UpstreamHead,
  upgrade: boolean,
): FramingRefusal | undefined {
  if (major !== 1)
    return {status: 505, error: `HTTP/${major}.${minor} is not served: send HTTP/1.1 (or HTTP/2 over TLS)`}
  if (head.codings > 0) {
    if (minor === 0) return {status: 400, error: 'Transfer-Encoding is not defined for HTTP/1.0: send Content-Length'}
    // as nginx answers: a repeated field is malformed (400), a coding other than chunked unimplemented (501)
    if (head.codings > 1) return {status: 400, error: 'more than one Transfer-Encoding field: send one, "chunked"'}
    if (head.transferEncoding!.trim().toLowerCase() !== 'chunked') {
      return {
        status: 501,
        error: `Transfer-Encoding "${head.transferEncoding}" is not implemented: send a lone "chunked" or Content-Length`,
      }
    }
  }

  if (head.hosts > 1) return {status: 400, error: 'more than one Host field: send one'}
  if (head.hosts === 0) {
    if (minor >= 1) return {status: 400, error: 'an HTTP/1.1 request needs a Host field'}
  } else if (!HOST.test(head.host!)) return {status: 400, error: 'the Host field is empty or not a host[:port]'}
  if (upgrade && head.hasBody) return {status: 400, error: 'an Upgrade request may not carry a body'}
  return undefined
}

/** How a response's body is framed for the client, or why the response cannot be passed on (502). */
export type ResponseFraming = {kind: 'none' | 'length' | 'chunked' | 'close'} | {kind: 'bad'; error: string}

/**
 * A response's framing: no body (HEAD, 204, 304), Content-Length, a lone chunked coding (decoded by the parser and
 * re-chunked here), or read to the connection's close. Any other transfer coding cannot be passed on without
 * decoding it, so it is refused: the parser would strip the chunked layer and hand the client bytes in a coding
 * nothing tells it about.
 */
export function responseFraming(head: DownstreamHead, noBody: boolean): ResponseFraming {
  if (head.transferEncoding !== undefined && head.transferEncoding.trim().toLowerCase() !== 'chunked') {
    return {
      kind: 'bad',
      error: `the upstream sent Transfer-Encoding "${head.transferEncoding}"; only chunked is passed on`,
    }
  }

  if (noBody) return {kind: 'none'}
  if (head.chunked) return {kind: 'chunked'}
  return {kind: head.hasLength ? 'length' : 'close'}
}
