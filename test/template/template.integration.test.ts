import {chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterEach, describe, expect, it} from 'vitest'

import {openRegistry} from '../../src/lib/registry/index.js'
import type {Registry} from '../../src/lib/registry/types.js'
import {testBackends} from '../helpers/backends.js'
import {eventually, ROOT, runCli, spawnCli, waitForExit} from '../helpers/cli.js'

const EXAMPLE = path.join(ROOT, 'examples/nginx/upstreams.conf.hbs')

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const clean of cleanups.splice(0).reverse()) await clean()
})

async function setUp(): Promise<{dir: string; uri: string; registry: Registry}> {
  const dir = mkdtempSync(path.join(tmpdir(), 'svc-template-'))
  cleanups.push(() => rmSync(dir, {recursive: true, force: true}))
  const uri = testBackends(['local'])[0]!.uri
  const registry = await openRegistry(uri)
  cleanups.push(() => registry.close())
  return {dir, uri, registry}
}

describe('svc template on the local backend', () => {
  it('--dry-run prints the output, and writes and runs nothing', async () => {
    const {dir, uri, registry} = await setUp()
    await registry.register({service: 'web', id: 'w1', address: '127.0.0.1', port: 8081, meta: {weight: '3'}})
    const marker = path.join(dir, 'ran')
    const out = path.join(dir, 'svc.conf')
    const result = await runCli(['template', '-t', `${EXAMPLE}:${out}:touch ${marker}`, '--dry-run', '--once'], {
      env: {SVC_BACKEND: uri, SVC_NGINX_LISTEN: '127.0.0.1:8000'},
    })
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toMatch(new RegExp(`^> ${out}\n# Written by svc template`))
    expect(result.stdout).toContain('server 127.0.0.1:8081 weight=3;')
    expect(result.stdout).toContain('listen 127.0.0.1:8000;')
    expect(existsSync(out)).toBe(false)
    expect(existsSync(marker)).toBe(false)
  })

  it('--once writes atomically with the mode of the file it replaces, and runs --exec only when the bytes change', async () => {
    const {dir, uri, registry} = await setUp()
    await registry.register({service: 'api', id: 'a1', address: '127.0.0.1', port: 9001})
    const out = path.join(dir, 'svc.conf')
    writeFileSync(out, 'old\n')
    chmodSync(out, 0o640)
    const log = path.join(dir, 'runs')
    const args = ['template', '-t', EXAMPLE, '--out', out, '--exec', `echo run >> ${log}`, '--once', '-b', uri]
    const first = await runCli(args)
    expect(first.code, first.stderr).toBe(0)
    expect(readFileSync(out, 'utf8')).toContain('server 127.0.0.1:9001;')
    // eslint-disable-next-line no-bitwise -- the permission bits
    expect(statSync(out).mode & 0o777).toBe(0o640)
    const second = await runCli(args)
    expect(second.code, second.stderr).toBe(0)
    expect(readFileSync(log, 'utf8')).toBe('run\n')
  })

  it('reports a failing command and a failing render, keeps the last good output, and goes on', async () => {
    const {dir, uri, registry} = await setUp()
    const good = path.join(dir, 'good.txt')
    const fragile = path.join(dir, 'fragile.txt')
    const goodTemplate = path.join(dir, 'good.hbs')
    const fragileTemplate = path.join(dir, 'fragile.hbs')
    writeFileSync(goodTemplate, '{{#each (service "web")}}{{port}}\n{{/each}}')
    // renders while no instance names a `next` service; fails (the helper needs a name) once one does not
    writeFileSync(fragileTemplate, 'start\n{{#each (service "web")}}{{#each (service meta.next)}}{{/each}}{{/each}}')
    const child = spawnCli(
      ['template', '-t', goodTemplate, '--out', good, '--exec', 'exit 3', '-t', `${fragileTemplate}:${fragile}`],
      {SVC_BACKEND: uri},
    )
    child.stdout!.resume()
    let stderr = ''
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString()
    })
    cleanups.push(async () => {
      child.kill('SIGTERM')
      await waitForExit(child, 5000).catch(() => child.kill('SIGKILL'))
    })
    await eventually(async () => stderr.includes('svc: watching'), 30_000)
    expect(readFileSync(fragile, 'utf8')).toBe('start\n')
    await registry.register({service: 'web', id: 'w1', address: '127.0.0.1', port: 8081})
    await eventually(async () => (stderr.match(/failed: exit status 3/g) ?? []).length === 2, 10_000).catch(() => {
      throw new Error(`no second failure; stderr: ${stderr}`)
    })
    await registry.register({service: 'web', id: 'w2', address: '127.0.0.1', port: 8082})
    await eventually(async () => (stderr.match(/failed: exit status 3/g) ?? []).length === 3, 10_000).catch(() => {
      throw new Error(`the command did not run again; stderr: ${stderr}`)
    })
    expect(readFileSync(good, 'utf8')).toBe('8081\n8082\n')
    expect(stderr).toContain(`svc: ${fragileTemplate}:2: service needs a service name as a quoted string`)
    expect(readFileSync(fragile, 'utf8')).toBe('start\n')
    expect(child.exitCode).toBeNull()
  })

  it('a broken template is a usage error: exit 2, one line naming the file and the line', async () => {
    const {dir, uri} = await setUp()
    const broken = path.join(dir, 'broken.hbs')
    writeFileSync(broken, 'upstream x {\n{{#each (service "web")}}\n  server {{address}};\n')
    const result = await runCli(['template', '-t', broken, '--out', path.join(dir, 'x.conf'), '-b', uri])
    expect(result.code).toBe(2)
    const lines = result.stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(new RegExp(`^Error: template ${broken}:4: parse error: `))
  })
})
