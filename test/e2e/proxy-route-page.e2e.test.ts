import {Pool} from 'undici'
import {type Browser, chromium} from 'playwright-core'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {openRegistry} from '../../src/lib/registry/index.js'
import type {RegistrationHandle, Registry} from '../../src/lib/registry/types.js'
import {testBackends} from '../helpers/backends.js'
import {spawnCli, waitForExit, waitForOutput} from '../helpers/cli.js'
import {startUpstream, type TestUpstream} from '../helpers/upstream.js'

/** Debian's chromium (scripts/install-backends.sh installs it). */
const CHROMIUM = process.env.SVC_TEST_CHROMIUM ?? '/usr/bin/chromium'
const WAIT_MS = 5000

// The route page (test/proxy/route-page.integration.test.ts) from the built binary under --workers 2: the primary
// serves it, and the /routes it reads is the whole proxy's.
describe('svc proxy --workers 2 route page (chromium, built binary)', () => {
  const [backend] = testBackends(['local'])
  let registry: Registry
  let upstream: TestUpstream
  let handle: RegistrationHandle
  let browser: Browser

  beforeAll(async () => {
    registry = await openRegistry(backend!.uri)
    upstream = await startUpstream('shop-1')
    handle = await registry.register({service: 'shop', id: 'shop-1', address: '127.0.0.1', port: upstream.port})
    browser = await chromium.launch({executablePath: CHROMIUM, args: ['--no-sandbox'], timeout: 10_000})
  })

  afterAll(async () => {
    await browser?.close()
    await handle?.close()
    await upstream?.kill()
    await registry?.close()
  })

  it("shows both workers' requests on one row", async () => {
    const args = ['proxy', '--workers', '2', '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0']
    const child = spawnCli(args, {SVC_BACKEND: backend!.uri})
    let stdout = ''
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString()
    })
    try {
      await waitForOutput(child, /^svc proxy admin on /)
      const address = /^svc proxy listening on http:\/\/(\S+)/m.exec(stdout)![1]!
      const admin = /^svc proxy admin on http:\/\/(\S+)/m.exec(stdout)![1]!
      // several connections at once: node:cluster hands them to the workers in turn
      const pool = new Pool(`http://${address}`, {connections: 8})
      await Promise.all(
        Array.from({length: 40}, async () => (await pool.request({path: '/shop/', method: 'GET'})).body.dump()),
      )
      await pool.close()

      const page = await browser.newPage({viewport: {width: 1000, height: 400}})
      await page.goto(`http://${admin}/`, {timeout: WAIT_MS})
      const row = page.locator('section[data-service="shop"] tr[data-instance="shop-1"]')
      await row.locator('td:nth-child(7)').filter({hasText: /^40$/}).waitFor({timeout: WAIT_MS})
      expect(await row.locator('td:nth-child(4)').textContent()).toBe('in-rotation')
      expect(await page.locator('section[data-service="shop"] h2 small').textContent()).toMatch(/^1\/1 in rotation/)
      child.kill('SIGTERM')
      expect(await waitForExit(child, 15_000)).toBe(0)
    } finally {
      child.kill('SIGKILL')
    }
  })
})
