import {describe, expect, it} from 'vitest'

import {withAccessLogValue} from '../../src/command-flags/proxy.js'

describe('withAccessLogValue', () => {
  it('gives a bare --access-log the value "-" (stderr), and leaves a given value alone', () => {
    expect(withAccessLogValue(['--access-log'])).toEqual(['--access-log', '-'])
    expect(withAccessLogValue(['--access-log', '--workers', '2'])).toEqual(['--access-log', '-', '--workers', '2'])
    expect(withAccessLogValue(['--access-log', '-l', ':0'])).toEqual(['--access-log', '-', '-l', ':0'])
    expect(withAccessLogValue(['--access-log', '-'])).toEqual(['--access-log', '-'])
    expect(withAccessLogValue(['--access-log', 'a.log'])).toEqual(['--access-log', 'a.log'])
    expect(withAccessLogValue(['--access-log=a.log'])).toEqual(['--access-log=a.log'])
    expect(withAccessLogValue(['--', '--access-log'])).toEqual(['--', '--access-log'])
  })
})
