import {execFile} from 'node:child_process'
import {copyFileSync, mkdtempSync, readFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {describe, expect, it} from 'vitest'

import {ROOT} from '../helpers/cli.js'

const OCLIF = path.join(ROOT, 'node_modules', '.bin', 'oclif')

describe('docs/commands.md', () => {
  it('is what `npm run docs` (oclif readme) generates from the commands today', async () => {
    const copy = path.join(mkdtempSync(path.join(tmpdir(), 'svc-docs-')), 'commands.md')
    copyFileSync(path.join(ROOT, 'docs', 'commands.md'), copy)
    const env: NodeJS.ProcessEnv = {...process.env, COLUMNS: '120'}
    // as `npm run docs` runs it: not under vitest's NODE_ENV=test
    delete env.NODE_ENV
    await new Promise<void>((resolve, reject) => {
      execFile(
        OCLIF,
        ['readme', '--readme-path', copy, '--no-aliases', '--no-source-links'],
        {cwd: ROOT, env, timeout: 60_000},
        (error, _stdout, stderr) => (error ? reject(new Error(`oclif readme: ${stderr || error.message}`)) : resolve()),
      )
    })
    const fresh = readFileSync(copy, 'utf8')
    expect(fresh).toContain('## `svc config set KEY VALUE`')
    expect(
      readFileSync(path.join(ROOT, 'docs', 'commands.md'), 'utf8'),
      'docs/commands.md is stale: run npm run docs',
    ).toBe(fresh)
  })
})
