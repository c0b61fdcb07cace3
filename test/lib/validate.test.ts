import {describe, expect, it} from 'vitest'

import {parseDuration} from '../../src/lib/duration.js'
import {formatError, UserError} from '../../src/lib/errors.js'
import {parseMeta, parsePort, toInstance, validateServiceName} from '../../src/lib/registry/validate.js'

describe('input validation', () => {
  it('accepts service names of letters, digits, -, _ and . up to 128 characters', () => {
    for (const name of ['web', 'svc.payments-v2_eu', 'a'.repeat(128)]) expect(validateServiceName(name)).toBe(name)
    for (const name of ['', 'a b', 'a/b', 'x'.repeat(129), 'ünï', 'a:b'])
      expect(() => validateServiceName(name)).toThrow(UserError)
  })

  it('parses ports strictly', () => {
    expect(parsePort('80')).toBe(80)
    expect(parsePort(65_535)).toBe(65_535)
    for (const bad of ['0', '65536', '-1', '1.5', '8o', '', ' ']) expect(() => parsePort(bad)).toThrow(/invalid port/)
  })

  it('parses meta items, keeping = signs in values', () => {
    expect(parseMeta(['a=1', 'b=x=y', 'c='])).toEqual({a: '1', b: 'x=y', c: ''})
    expect(() => parseMeta(['nokey'])).toThrow(/malformed --meta "nokey"/)
    expect(() => parseMeta(['=v'])).toThrow(/malformed --meta/)
    expect(() => parseMeta(['bad key=v'])).toThrow(/invalid meta key/)
  })

  it('fills instance defaults and removes duplicate tags', () => {
    expect(toInstance({service: 'web', address: '10.0.0.1', port: 80, tags: ['a', 'a', 'b']})).toEqual({
      service: 'web',
      id: 'web:10.0.0.1:80',
      address: '10.0.0.1',
      port: 80,
      tags: ['a', 'b'],
      meta: {},
      health: 'passing',
    })
    expect(() => toInstance({service: 'web', address: '10.0.0.1', port: 80, tags: ['has space']})).toThrow(
      /invalid tag/,
    )
  })

  it('parses durations', () => {
    expect(parseDuration('500ms')).toBe(500)
    expect(parseDuration('10s')).toBe(10_000)
    expect(parseDuration('1.5s')).toBe(1500)
    expect(parseDuration('2m')).toBe(120_000)
    // a bare number has no unit: refused, never guessed
    expect(() => parseDuration('10')).toThrow(/invalid duration "10" \(no unit\)/)
    expect(() => parseDuration('10')).toThrow(expect.objectContaining({hint: 'write it as 10ms, 10s, or with m or h'}))
    for (const bad of ['0', 'soon', '-1s', '10 s', '0ms'])
      expect(() => parseDuration(bad)).toThrow(/invalid duration|greater than zero/)
  })

  it('formats errors on one line with their fix', () => {
    expect(formatError(new UserError('bad thing', 'do this'))).toBe('bad thing: do this')
    expect(formatError(new Error('Parsing --port \n\tinvalid port "x"'))).toBe('--port: invalid port "x"')
  })
})
