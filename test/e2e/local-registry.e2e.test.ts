import {mkdtempSync, rmSync, symlinkSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {localRegistry} from '../helpers/local.js'
import {withDefaults} from '../../src/lib/registry/options.js'
import type {RegistrationHandle} from '../../src/lib/registry/types.js'
import {runCli} from '../helpers/cli.js'

describe('svc resolve on a local registry holding foreign files', () => {
  const dir = path.join(mkdtempSync(path.join(tmpdir(), 'svc-e2e-local-')), 'registry')
  const registry = localRegistry({kind: 'local', dir}, withDefaults())
  const handles: RegistrationHandle[] = []
  const svc = (...args: string[]) => runCli([...args, '--backend', `local://${dir}`], {env: {SVC_BACKEND: ''}})

  beforeAll(async () => {
    handles.push(
      await registry.register({service: 'web', address: '127.0.0.1', port: 8081, id: 'web-a'}, {ttlMs: 60_000}),
      await registry.register({service: 'web', address: '127.0.0.1', port: 8082, id: 'web-b'}, {ttlMs: 60_000}),
    )
    writeFileSync(path.join(dir, 'web', 'corrupt.json'), '{"instance": {"service": "web", "id"', {mode: 0o600})
  })

  afterAll(async () => {
    await registry.close()
    rmSync(path.dirname(dir), {recursive: true, force: true})
  })

  it('prints the healthy instances, and one warning on stderr, exit 0', async () => {
    const result = await svc('resolve', 'web')
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/web-a\s+127\.0\.0\.1:8081\s+passing/)
    expect(result.stdout).toMatch(/web-b\s+127\.0\.0\.1:8082\s+passing/)
    expect(result.stderr).toBe(`svc: skipping ${path.join(dir, 'web', 'corrupt.json')}: it is not JSON\n`)

    const services = await svc('resolve', '--json')
    expect(services.code).toBe(0)
    expect(JSON.parse(services.stdout)).toEqual([{name: 'web', instances: 2, passing: 2}])
    expect(services.stderr.trim().split('\n')).toHaveLength(1)
  })

  it('refuses a registry directory that is a symbolic link, in one line', async () => {
    const link = `${dir}-link`
    symlinkSync(dir, link)
    const result = await runCli(['resolve', 'web', '--backend', `local://${link}`], {env: {SVC_BACKEND: ''}})
    expect(result.code).toBe(2)
    expect(result.stdout).toBe('')
    expect(result.stderr).toBe(
      `Error: refusing the local registry directory ${link}: it is a symbolic link, which svc does not follow: ` +
        'use a directory of your own: set SVC_HOME, or --backend local:///path/you/own\n',
    )
  })
})
