import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'

import {ROOT, runCli} from '../helpers/cli.js'

const root = mkdtempSync(path.join(tmpdir(), 'svc-demo-moved-'))

describe('svc demo on a Node whose internals moved', () => {
  afterAll(() => {
    rmSync(root, {recursive: true, force: true})
  })

  it('serves the demo on the node:http engine, after one warning line', async () => {
    const preload = path.join(ROOT, 'test/fixtures/move-node-internals.cjs')
    const result = await runCli(['demo', '--fast'], {
      env: {
        HOME: root,
        SVC_HOME: path.join(root, 'svc'),
        XDG_STATE_HOME: root,
        SVC_BACKEND: '',
        NODE_OPTIONS: `-r ${preload}`,
      },
      timeoutMs: 60_000,
    })
    expect(result.code).toBe(0)
    const warnings = result.stdout.split('\n').filter((line) => line.includes('warning: Node.js'))
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/HTTPParser's callback slots moved.*node:http engine/)
    expect(result.stdout).toContain('✓ 60 requests, 0 failed, spread 20 / 20 / 20 over 3 instances')
    expect(result.stdout).not.toContain('✗')
  })
})
