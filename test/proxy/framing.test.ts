import {describe, expect, it} from 'vitest'

import {requestRefusal, responseFraming} from '../../src/lib/proxy/framing.js'
import {connectionTokens, downstreamHeaders, upstreamHeaders} from '../../src/lib/proxy/headers.js'
import {normalizeTarget} from '../../src/lib/proxy/target.js'

const scan = (raw: string[]) => upstreamHeaders(raw, '127.0.0.1')

describe('requestRefusal: the request side of framing', () => {
  it.each([
    ['HTTP/2.0', 2, 0, ['Host', 'x'], false, 505],
    ['HTTP/1.0 chunked', 1, 0, ['Host', 'x', 'Transfer-Encoding', 'chunked'], false, 400],
    ['gzip, chunked', 1, 1, ['Host', 'x', 'Transfer-Encoding', 'gzip, chunked'], false, 501],
    [
      'two Transfer-Encoding fields',
      1,
      1,
      ['Host', 'x', 'Transfer-Encoding', 'chunked', 'Transfer-Encoding', 'chunked'],
      false,
      400,
    ],
    ['no Host on HTTP/1.1', 1, 1, [], false, 400],
    ['two Host fields', 1, 1, ['Host', 'x', 'host', 'y'], false, 400],
    ['an empty Host', 1, 1, ['Host', ''], false, 400],
    ['Host: a b/c@d', 1, 1, ['Host', 'a b/c@d'], false, 400],
    ['Upgrade with a body', 1, 1, ['Host', 'x', 'Content-Length', '4'], true, 400],
  ] as const)('refuses %s', (_what, major, minor, raw, upgrade, status) => {
    expect(requestRefusal(major, minor, scan([...raw]), upgrade)?.status).toBe(status)
  })

  it.each([
    ['a plain HTTP/1.1 request', 1, 1, ['Host', 'example.com:8080']],
    ['HTTP/1.0 without Host', 1, 0, []],
    ['an IPv6 Host', 1, 1, ['Host', '[::1]:80']],
    ['a lone chunked (any case, spaces)', 1, 1, ['Host', 'x', 'Transfer-Encoding', ' Chunked ']],
  ] as const)('accepts %s', (_what, major, minor, raw) => {
    expect(requestRefusal(major, minor, scan([...raw]), false)).toBeUndefined()
  })
})

describe('responseFraming: the response side', () => {
  it('passes a lone chunked, a length, or close-delimited bodies, and refuses other codings', () => {
    expect(responseFraming(downstreamHeaders(['Transfer-Encoding', 'chunked']), false)).toEqual({kind: 'chunked'})
    expect(responseFraming(downstreamHeaders(['Content-Length', '2']), false)).toEqual({kind: 'length'})
    expect(responseFraming(downstreamHeaders([]), false)).toEqual({kind: 'close'})
    expect(responseFraming(downstreamHeaders(['Content-Length', '2']), true)).toEqual({kind: 'none'})
    expect(responseFraming(downstreamHeaders(['Transfer-Encoding', 'gzip, chunked']), false).kind).toBe('bad')
  })
})

describe('the hop-by-hop rule', () => {
  it('never lets Connection remove the fields that frame or route a message', () => {
    expect(connectionTokens('content-length, Host, transfer-encoding, x-forwarded-for')).toBeUndefined()
    expect(connectionTokens('content-length, x-secret')).toEqual(new Set(['x-secret']))
    const head = scan([
      'Host',
      'x',
      'Content-Length',
      '3',
      'Connection',
      'content-length, host, x-secret',
      'X-Secret',
      's',
    ])
    expect(head.block).toContain('Content-Length: 3\r\n')
    expect(head.block).toContain('Host: x\r\n')
    expect(head.block).not.toContain('X-Secret')
    expect(downstreamHeaders(['Connection', 'content-length', 'Content-Length', '2']).block).toBe(
      'Content-Length: 2\r\n',
    )
  })
})

describe('encoded slashes', () => {
  it('refuses %2f and %5c in the path, not in the query', () => {
    expect(normalizeTarget('/good/..%2f..%2fother')).toEqual({ok: false, problem: 'encoded-slash'})
    expect(normalizeTarget('/good/a%2Fb')).toEqual({ok: false, problem: 'encoded-slash'})
    expect(normalizeTarget('/good/a%5cb')).toEqual({ok: false, problem: 'encoded-slash'})
    expect(normalizeTarget('/good/a?next=%2f')).toEqual({ok: true, url: '/good/a?next=%2f'})
  })
})
