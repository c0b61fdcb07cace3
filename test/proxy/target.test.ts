import * as fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import {normalizeTarget} from '../../src/lib/proxy/target.js'
import {parseTrustedProxies} from '../../src/lib/proxy/trust.js'

describe('normalizeTarget', () => {
  it('returns the target itself when it has no dot segment', () => {
    const url = '/web/a.b/c..d/.e?x=/../y&z=%2e%2e'
    const out = normalizeTarget(url)
    expect(out).toEqual({ok: true, url})
    expect(out.ok && out.url).toBe(url)
  })

  it.each([
    ['/a/./b', '/a/b'],
    ['/a/b/../c', '/a/c'],
    ['/a/b/..', '/a/'],
    ['/a/.', '/a/'],
    ['/a/..', '/'],
    ['/a/../b/', '/b/'],
    ['/a/%2e%2E/b?q=/../', '/b?q=/../'],
    ['/a/.%2e/b', '/b'],
    ['/a//b/../c', '/a//c'],
  ])('resolves %s to %s', (input, output) => {
    expect(normalizeTarget(input)).toEqual({ok: true, url: output})
  })

  it('refuses a path that climbs above the root, and backslashes', () => {
    expect(normalizeTarget('/..')).toEqual({ok: false, problem: 'escapes-root'})
    expect(normalizeTarget('/a/../../b')).toEqual({ok: false, problem: 'escapes-root'})
    expect(normalizeTarget('/%2e%2e/etc/passwd')).toEqual({ok: false, problem: 'escapes-root'})
    expect(normalizeTarget(String.raw`/a\..\b`)).toEqual({ok: false, problem: 'backslash'})
  })

  it('never leaves a dot segment in the path it returns, and keeps the query (property)', () => {
    const segment = fc.constantFrom('.', '..', '%2e', '%2E%2e', 'a', 'b', '', '.x', '..%2f', 'c.d')
    fc.assert(
      fc.property(fc.array(segment, {maxLength: 12}), fc.option(fc.string({maxLength: 8})), (segments, query) => {
        const url = '/' + segments.join('/') + (query === null ? '' : '?' + query.replaceAll('\\', ''))
        const out = normalizeTarget(url)
        if (!out.ok) return
        const [path = '', ...rest] = out.url.split('?')
        expect(path.startsWith('/')).toBe(true)
        for (const s of path.split('/')) expect(['.', '..']).not.toContain(s.replaceAll(/%2e/gi, '.'))
        expect(rest.join('?')).toBe(url.includes('?') ? url.slice(url.indexOf('?') + 1) : '')
      }),
      {numRuns: 2000},
    )
  })
})

describe('parseTrustedProxies', () => {
  it('matches addresses and CIDR blocks, IPv4-mapped clients included', () => {
    const trusted = parseTrustedProxies(['10.0.0.0/8,127.0.0.1', 'fd00::/8'])!
    expect(trusted('10.1.2.3')).toBe(true)
    expect(trusted('::ffff:10.1.2.3')).toBe(true)
    expect(trusted('127.0.0.1')).toBe(true)
    expect(trusted('127.0.0.2')).toBe(false)
    expect(trusted('fd12::1')).toBe(true)
    expect(trusted('::1')).toBe(false)
    expect(trusted('')).toBe(false)
    expect(parseTrustedProxies([])).toBeUndefined()
  })

  it('refuses what is no address or block, in one line', () => {
    for (const bad of ['10.0.0.0/33', 'nope', '1.2.3.4/8/1', '::1/129', '10.0.0.0/x'])
      expect(() => parseTrustedProxies([bad])).toThrow(/^invalid trusted proxy "/)
  })
})
