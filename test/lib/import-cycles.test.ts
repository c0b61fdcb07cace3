import {execFile} from 'node:child_process'
import path from 'node:path'
import {promisify} from 'node:util'
import {describe, expect, it} from 'vitest'

import {ROOT} from '../helpers/cli.js'

const run = promisify(execFile)

describe('src imports', () => {
  it('form no cycle (madge, the same check as npx madge --circular)', async () => {
    const madge = path.join(ROOT, 'node_modules', '.bin', 'madge')
    const args = [
      '--circular',
      '--json',
      '--no-spinner',
      '--extensions',
      'ts,tsx',
      '--ts-config',
      'tsconfig.json',
      'src',
    ]
    // madge exits 1 when it finds a cycle; the JSON on stdout says which
    const {stdout} = await run(madge, args, {cwd: ROOT, timeout: 60_000}).catch((error: {stdout?: string}) => ({
      stdout: error.stdout ?? '',
    }))
    expect(JSON.parse(stdout)).toEqual([])
  })
})
