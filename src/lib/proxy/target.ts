/**
 * Request-target checks that run before routing: dot segments are resolved (RFC 3986 section 5.2.4, with `%2e` read
 * as a dot, as most servers do) so a path such as `/a/../b/` is routed on what it means, never on how it starts.
 */

/** What `normalizePath` found wrong with a target. */
export type TargetProblem = 'backslash' | 'encoded-slash' | 'escapes-root'

export type NormalizedTarget = {ok: true; url: string} | {ok: false; problem: TargetProblem}

const ENCODED_DOT = /%2e/i
const ENCODED_SLASH = /^%(?:2f|5c)$/i

/**
 * The origin-form target `url` (starting with /) with dot segments removed from its path, the query kept as sent.
 * Returns `url` itself when its path holds no dot segment (the usual case, checked without allocating). A backslash
 * in the path is refused (some servers read it as a slash, which would let dot segments hide behind it), and so is a
 * path whose `..` segments climb above the root, and so is an encoded slash or backslash (`%2f`, `%5c`).
 */
export function normalizeTarget(url: string): NormalizedTarget {
  const q = url.indexOf('?')
  const end = q === -1 ? url.length : q
  let dots = false
  for (let i = 0; i < end; i++) {
    const c = url.codePointAt(i)
    if (c === 92) return {ok: false, problem: 'backslash'}
    // an encoded slash or backslash would be one segment here and two for an upstream that decodes it (nginx: 400)
    if (c === 37 && ENCODED_SLASH.test(url.slice(i, i + 3))) return {ok: false, problem: 'encoded-slash'}
    // "/." or "/%2e" starts a segment that may be a dot segment
    if (c === 47 && i + 1 < end) {
      const next = url.codePointAt(i + 1)
      if (next === 46 || (next === 37 && ENCODED_DOT.test(url.slice(i + 1, i + 4)))) dots = true
    }
  }

  if (!dots) return {ok: true, url}
  const segments = url.slice(1, end).split('/')
  const out: string[] = []
  // a path that ends in a dot segment names a directory: it keeps its trailing slash
  let directory = false
  for (const segment of segments) {
    const dot = dotSegment(segment)
    directory = dot !== 0
    if (dot === 1) continue
    if (dot === 2) {
      if (out.length === 0) return {ok: false, problem: 'escapes-root'}
      out.pop()
      continue
    }

    out.push(segment)
  }

  const path = '/' + out.join('/') + (directory && out.length > 0 ? '/' : '')
  return {ok: true, url: q === -1 ? path : path + url.slice(q)}
}

/** 1 for `.`, 2 for `..` (either written as `%2e`), 0 for any other segment. */
function dotSegment(segment: string): 0 | 1 | 2 {
  if (segment.length === 0 || segment.length > 6) return 0
  const plain = segment.replaceAll(/%2e/gi, '.')
  if (plain === '.') return 1
  if (plain === '..') return 2
  return 0
}
