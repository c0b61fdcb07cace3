/* eslint-disable import/no-named-as-default-member -- fast-check is used as fc.<arbitrary>, as its documentation does */
import fc from 'fast-check'
import path from 'node:path'
import {describe, expect, it} from 'vitest'

import {parseDuration} from '../../src/lib/duration.js'
import {formatError, UserError} from '../../src/lib/errors.js'
import {
  parseMeta,
  parsePort,
  validateAddress,
  validateInstanceId,
  validateServiceName,
  validateTag,
} from '../../src/lib/registry/validate.js'

const RUNS = {numRuns: 400}
/** setTimeout's limit: a longer duration would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** Text as it may arrive on a command line or from the environment: any code points, near-misses of valid forms, odd spacing. */
function input(near: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc.oneof(
    fc.string({maxLength: 40}),
    fc.string({unit: 'binary', maxLength: 40}),
    fc.string({unit: 'grapheme', maxLength: 30}),
    fc.string({
      unit: fc.constantFrom('\n', '\r', '\t', ' ', '\u2028', '"', '=', ',', '.', '/', '0', '9', 'a', '_', '-'),
    }),
    near,
    fc
      .tuple(fc.constantFrom('', ' ', '\n', '\t', '-', '+', '0'), near, fc.constantFrom('', ' ', '\n', 'x', '\u0000'))
      .map((parts) => parts.join('')),
    fc.string({minLength: 300, maxLength: 2000}),
  )
}

/** The value passes `valid`, or the error is a UserError whose message and hint are one short line each. */
function parsesOrUserError<T>(parse: () => T, valid: (value: T) => boolean): void {
  let value: T
  try {
    value = parse()
  } catch (error) {
    expect(error).toBeInstanceOf(UserError)
    const {hint, message} = error as UserError
    expect(message).not.toMatch(/[\n\r\u2028\u2029]/)
    expect(message.length).toBeLessThan(200)
    expect(hint ?? '').not.toMatch(/[\n\r]/)
    expect(formatError(error)).not.toMatch(/\n\s+at /)
    return
  }

  expect(valid(value)).toBe(true)
}

/** Each KEY=VALUE item is an own string property of the parsed meta. */
function keepsEveryItem(items: readonly string[], meta: Record<string, string>): boolean {
  const keys = items.map((item) => item.slice(0, item.indexOf('=')))
  return keys.every((key) => Object.hasOwn(meta, key)) && Object.values(meta).every((v) => typeof v === 'string')
}

const digits = fc.stringMatching(/^\d{1,12}(\.\d{0,6})?$/)

describe('flag values: any string parses to a valid value or fails with a one-line UserError', () => {
  it('durations', () => {
    const near = fc.tuple(digits, fc.constantFrom('', 'ms', 's', 'm', 'h', 'us', 'd', 'S')).map(([n, u]) => n + u)
    fc.assert(
      fc.property(input(near), (text) =>
        parsesOrUserError(
          () => parseDuration(text),
          (ms) => Number.isSafeInteger(ms) && ms >= 1 && ms <= MAX_TIMER_MS,
        ),
      ),
      RUNS,
    )
    fc.assert(
      fc.property(fc.integer({min: 1, max: MAX_TIMER_MS}), (ms) => {
        expect(parseDuration(`${ms}ms`)).toBe(ms)
      }),
      RUNS,
    )
  })

  it('ports', () => {
    fc.assert(
      fc.property(input(fc.integer({min: -10, max: 70_000}).map(String)), (text) =>
        parsesOrUserError(
          () => parsePort(text),
          (port) =>
            Number.isInteger(port) &&
            port >= 1 &&
            port <= 65_535 &&
            String(port) === text.trim().replace(/^0+(?=\d)/, ''),
        ),
      ),
      RUNS,
    )
    fc.assert(
      fc.property(fc.integer({min: 1, max: 65_535}), (port) => {
        expect(parsePort(String(port))).toBe(port)
      }),
    )
  })

  it('--meta K=V', () => {
    const near = fc
      .tuple(fc.stringMatching(/^[A-Za-z_][\w.-]{0,10}$/), fc.constantFrom('=', '==', ''), fc.string({maxLength: 40}))
      .map((parts) => parts.join(''))
    fc.assert(
      fc.property(fc.array(input(near), {maxLength: 4}), (items) =>
        parsesOrUserError(
          () => parseMeta(items),
          (meta) => keepsEveryItem(items, meta),
        ),
      ),
      RUNS,
    )
    // every key the validator accepts is kept, __proto__ and friends included
    for (const key of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      parsesOrUserError(
        () => parseMeta([`${key}=v`]),
        (meta) => Object.hasOwn(meta, key) && meta[key] === 'v',
      )
    }
  })

  it('--tag', () => {
    fc.assert(
      fc.property(input(fc.stringMatching(/^[\w.:-]{1,20}$/)), (tag) =>
        parsesOrUserError(
          () => validateTag(tag),
          (value) => value === tag && value !== '' && !/[\s,]/.test(value),
        ),
      ),
      RUNS,
    )
  })

  it('service names: valid ones are one safe path segment', () => {
    fc.assert(
      fc.property(input(fc.stringMatching(/^[\w.-]{1,20}$/)), (name) =>
        parsesOrUserError(
          () => validateServiceName(name),
          (value) =>
            value === name && path.dirname(path.join('/registry', value)) === '/registry' && !value.includes('/'),
        ),
      ),
      RUNS,
    )
    for (const name of ['.', '..']) expect(() => validateServiceName(name)).toThrow(UserError)
  })

  it('instance ids and addresses', () => {
    fc.assert(
      fc.property(input(fc.stringMatching(/^[\w.:@-]{1,20}$/)), (id) =>
        parsesOrUserError(
          () => validateInstanceId(id),
          (value) => value === id && !encodeURIComponent(value).includes('/'),
        ),
      ),
      RUNS,
    )
    fc.assert(
      fc.property(input(fc.stringMatching(/^[\w.:%-]{1,20}$/)), (address) =>
        parsesOrUserError(
          () => validateAddress(address),
          (value) => value === address,
        ),
      ),
      RUNS,
    )
  })
})
