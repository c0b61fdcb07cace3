import {mkdirSync, mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {type Browser, chromium} from 'playwright-core'
import {request} from 'undici'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {runProxy, type RunningProxy} from '../../src/lib/proxy/index.js'
import {openRegistry} from '../../src/lib/registry/index.js'
import type {RegistrationHandle, Registry} from '../../src/lib/registry/types.js'
import {testBackends} from '../helpers/backends.js'
import {startUpstream, type TestUpstream} from '../helpers/upstream.js'

/** Debian's chromium (scripts/install-backends.sh installs it). */
const CHROMIUM = process.env.SVC_TEST_CHROMIUM ?? '/usr/bin/chromium'
/** Where the screenshot goes: a temporary file, or docs/images/route-page.png when refreshing the docs' one. */
const SCREENSHOT = process.env.SVC_ROUTE_PAGE_SCREENSHOT
const WAIT_MS = 5000

// The admin route page in a real browser: it follows /routes every second, without a reload.
describe('svc proxy route page (chromium, local backend)', () => {
  const [backend] = testBackends(['local'])
  const dir = mkdtempSync(path.join(tmpdir(), 'svc-route-page-'))
  let registry: Registry
  let running: RunningProxy
  let browser: Browser
  const upstreams: TestUpstream[] = []
  const handles: RegistrationHandle[] = []

  beforeAll(async () => {
    registry = await openRegistry(backend!.uri)
    for (const name of ['web-1', 'web-2', 'api-1']) upstreams.push(await startUpstream(name))
    handles.push(
      await registry.register({service: 'web', id: 'web-1', address: '127.0.0.1', port: upstreams[0]!.port}),
      await registry.register({service: 'api', id: 'api-1', address: '127.0.0.1', port: upstreams[2]!.port}),
    )
    running = await runProxy(registry, {
      host: '127.0.0.1',
      port: 0,
      strategy: 'round-robin',
      connectTimeoutMs: 1000,
      timeoutMs: 5000,
      admin: {host: '127.0.0.1', port: 0},
      log() {},
    })
    browser = await chromium.launch({executablePath: CHROMIUM, args: ['--no-sandbox'], timeout: 10_000})
  })

  afterAll(async () => {
    await browser?.close()
    await running?.stop(1000)
    await Promise.allSettled(handles.map((h) => h.close()))
    await Promise.allSettled(upstreams.map((u) => u.kill()))
    await registry?.close()
    rmSync(dir, {recursive: true, force: true})
  })

  it('shows services and instances, and an instance appearing and leaving without a reload', async () => {
    const page = await browser.newPage({viewport: {width: 1000, height: 560}})
    let loads = 0
    page.on('load', () => loads++)
    await page.goto(`http://${running.adminAddress}/`, {timeout: WAIT_MS})
    const web = page.locator('section[data-service="web"]')
    await web.locator('tr[data-instance="web-1"]').waitFor({timeout: WAIT_MS})
    await page.locator('section[data-service="api"] tr[data-instance="api-1"]').waitFor({timeout: WAIT_MS})
    expect(await web.locator('tr[data-instance="web-1"]').textContent()).toContain(`127.0.0.1:${upstreams[0]!.port}`)

    const second = await registry.register({
      service: 'web',
      id: 'web-2',
      address: '127.0.0.1',
      port: upstreams[1]!.port,
    })
    const row = web.locator('tr[data-instance="web-2"]')
    await row.waitFor({timeout: WAIT_MS})
    expect(await row.textContent()).toContain('in-rotation')
    // some traffic, so the counters and rates show
    for (let i = 0; i < 20; i++) await (await request(`http://${running.address}/web/`)).body.dump()
    await row.locator('td:nth-child(7)').filter({hasText: /^10$/}).waitFor({timeout: WAIT_MS})
    const shot = SCREENSHOT ?? path.join(dir, 'route-page.png')
    mkdirSync(path.dirname(shot), {recursive: true})
    await page.screenshot({path: shot})

    await second.close()
    await row.waitFor({state: 'detached', timeout: WAIT_MS})
    expect(await web.locator('tr[data-instance="web-1"]').count()).toBe(1)
    expect(loads).toBe(1)
  })
})
