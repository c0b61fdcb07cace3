import {describe, expect, it} from 'vitest'

import {runCli} from '../helpers/cli.js'

// scripts/test.sh runs the matrix with SVC_TEST_NODE_LINE set: the workers and the svc they spawn must be that line.
describe('the Node line under test', () => {
  it('runs the test workers and the spawned svc on one Node, the line asked for', async () => {
    console.log(`node under test: ${process.version} (${process.execPath})`)
    const line = process.env.SVC_TEST_NODE_LINE
    if (line !== undefined) expect(process.version.startsWith(`v${line}.`)).toBe(true)
    const {code, stdout} = await runCli(['--version'])
    expect(code).toBe(0)
    expect(stdout).toContain(`node-${process.version}`)
  })
})
