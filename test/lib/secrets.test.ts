import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterEach, describe, expect, it} from 'vitest'

import {findLeaks, OUTPUT_DIR_ENV, outputCopyPath, recordSecret} from '../helpers/secrets.js'

describe('the secret-leak check over svc outputs', () => {
  const saved = process.env[OUTPUT_DIR_ENV]
  let dir: string | undefined
  afterEach(() => {
    process.env[OUTPUT_DIR_ENV] = saved
    if (dir) rmSync(dir, {recursive: true, force: true})
  })

  it('finds a recorded secret in a copy, names the copy (and so the test file), and reports no secret text', () => {
    dir = mkdtempSync(path.join(tmpdir(), 'svc-leak-check-'))
    process.env[OUTPUT_DIR_ENV] = dir
    recordSecret('tok-aaaa-1111')
    recordSecret('multi\nline secret')
    const leaky = outputCopyPath(dir, '/repo/test/registry/consul-secure.integration.test.ts', 42)
    expect(path.basename(leaky)).toBe('consul-secure.integration.test-42.out')
    writeFileSync(leaky, 'Error: refused token tok-aaaa-1111\n')
    writeFileSync(outputCopyPath(dir, '/repo/test/x.test.ts', 7), 'nothing here; multi\nline secret\n')
    writeFileSync(outputCopyPath(dir, '/repo/test/y.test.ts', 8), 'clean output\n')
    const leaks = findLeaks(dir)
    expect(leaks).toEqual([
      {file: 'consul-secure.integration.test-42.out', secret: 1},
      {file: 'x.test-7.out', secret: 2},
    ])
    expect(JSON.stringify(leaks)).not.toContain('tok-aaaa')
  })

  it('finds nothing when no secret was recorded', () => {
    dir = mkdtempSync(path.join(tmpdir(), 'svc-leak-check-'))
    writeFileSync(path.join(dir, 'a-1.out'), 'anything')
    expect(findLeaks(dir)).toEqual([])
  })
})
