import {existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {StepRecord} from '../../src/lib/demo/format.js'
import {openRegistry} from '../../src/lib/registry/index.js'
import {runCli, spawnCli, waitForExit, waitForOutput} from '../helpers/cli.js'

const root = mkdtempSync(path.join(tmpdir(), 'svc-demo-e2e-'))
const home = path.join(root, 'home')
const svcHome = path.join(home, 'svc-home')
const stateHome = path.join(home, 'state')
const tmp = path.join(root, 'tmp')
// everything the demo could touch by default points into the test's own directories
const env = {HOME: home, SVC_HOME: svcHome, XDG_STATE_HOME: stateHome, TMPDIR: tmp, SVC_BACKEND: ''}

/** Every file under `dir` with its size and mtime: equal listings mean nothing was written there. */
function listing(dir: string): string[] {
  const out: string[] = []
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, {withFileTypes: true})) {
      const p = path.join(d, entry.name)
      if (entry.isDirectory()) walk(p)
      const s = statSync(p)
      out.push(`${path.relative(dir, p)} ${entry.isDirectory() ? 'dir' : s.size} ${s.mtimeMs}`)
    }
  }

  walk(dir)
  return out.sort()
}

/** Temporary directories the demo made (oclif's tsx keeps a cache of its own in TMPDIR). */
function demoDirs(): string[] {
  return readdirSync(tmp).filter((name) => name.startsWith('svc-demo-'))
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('svc demo without a terminal', () => {
  let before: string[]

  beforeAll(async () => {
    mkdirSync(tmp, {recursive: true})
    // the user's default registry, with one registration of their own in it
    const registry = await openRegistry({kind: 'local', dir: path.join(svcHome, 'registry')})
    const handle = await registry.register({service: 'web', id: 'users-own', address: '127.0.0.1', port: 9999})
    await handle.close({deregister: false})
    await registry.close()
    before = listing(home)
    expect(before.some((l) => l.startsWith('svc-home/registry/web/users-own.json'))).toBe(true)
  })

  afterAll(() => {
    rmSync(root, {recursive: true, force: true})
  })

  it('walks through every step as plain text, cleans up, and exits 0', async () => {
    const result = await runCli(['demo', '--fast'], {env, timeoutMs: 60_000})
    process.stderr.write(`[demo e2e] plain output:\n${result.stdout}\n`)
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    const out = result.stdout

    for (let i = 1; i <= 5; i++) expect(out).toContain(`[${i}/5] `)
    expect(out.match(/^ {2}✓ /gm)).toHaveLength(5)
    expect(out).not.toContain('✗')

    // 1: three instances registered, each a process with its own pid
    const rows = [...out.matchAll(/^ +(web-\d) +127\.0\.0\.1:(\d+) +(\d+)$/gm)]
    expect(rows.map((r) => r[1])).toEqual(['web-1', 'web-2', 'web-3'])
    const pids = rows.map((r) => Number(r[3]))
    for (const r of rows) expect(out).toContain(`$ svc register web --port ${r[2]} --id ${r[1]}`)

    // 2: resolve shows the three, healthy
    expect(out).toContain('$ svc resolve web')
    expect(out.match(/^ +web-\d +127\.0\.0\.1:\d+ +passing +pid=\d+$/gm)).toHaveLength(3)

    // 3: round-robin spreads 60 requests evenly, none failed
    expect(out).toMatch(/\$ svc proxy --listen 127\.0\.0\.1:\d+ --admin-listen 127\.0\.0\.1:\d+/)
    for (const id of ['web-1', 'web-2', 'web-3']) expect(out).toMatch(new RegExp(`^ +${id} +20 +█+$`, 'm'))
    expect(out).toContain('✓ 60 requests, 0 failed, spread 20 / 20 / 20 over 3 instances')

    // 4: the route table shrinks by one as it happens, and no request fails
    expect(out).toMatch(/\+\d+ ms +web-2 deregistered itself/)
    expect(out).toMatch(/\+\d+ ms +svc watch: removed web-2 127\.0\.0\.1:\d+/)
    expect(out).toMatch(/\+\d+ ms +\/routes: web 3 → 2 in rotation \(web-[13], web-[13]\)/)
    expect(out).toMatch(/\+\d+ ms +web-2 exited with status 0/)
    expect(out).toMatch(/^ +\d+ requests, 0 failed; 0 sent to web-2 after the route change; proxy retries: \d+$/m)
    expect(out).toMatch(/✓ web-2 stopped under load: route table 3 → 2, 0 of \d+ requests failed/)

    // 5: nothing left, checked by the demo and again here
    expect(out).toMatch(/proxy: +stopped \(0 requests cut\), 127\.0\.0\.1:\d+ refuses connections/)
    expect(out).toMatch(/processes: +.*: all gone/)
    expect(out).toMatch(/registry: +no services registered/)
    expect(out).toMatch(/temp dir: +removed/)
    expect(out).toMatch(/svc demo: done in .*; every step as expected, nothing left behind\.\n$/)
    const dir = /temporary local registry, (\S+)/.exec(out)![1]!
    expect(dir.startsWith(tmp)).toBe(true)
    expect(existsSync(dir)).toBe(false)
    expect(demoDirs()).toEqual([])
    for (const pid of pids) expect(alive(pid)).toBe(false)

    // the user's registry and state were not touched
    expect(listing(home)).toEqual(before)
    expect(readFileSync(path.join(svcHome, 'registry', 'web', 'users-own.json'), 'utf8')).toContain('"users-own"')
  })

  it('--json prints one record per step with the facts checked, and a last one with the outcome', async () => {
    const result = await runCli(['demo', '--fast', '--json', '--instances', '4', '--requests', '40'], {
      env,
      timeoutMs: 60_000,
    })
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    const records = result.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Omit<StepRecord, 'type'> & {type: 'finished' | 'step'})
    expect(records.map((r) => r.id ?? 'end')).toEqual(['register', 'resolve', 'proxy', 'stop-one', 'cleanup', 'end'])
    expect(records.every((r) => r.ok)).toBe(true)
    const [register, resolve, proxy, stopOne, cleanup] = records.map((r) => r.data ?? {})
    const instances = register!.instances as Array<{id: string; pid: number}>
    expect(instances.map((i) => i.id)).toEqual(['web-1', 'web-2', 'web-3', 'web-4'])
    expect(resolve!.resolved).toHaveLength(4)
    expect(proxy).toMatchObject({
      sent: 40,
      ok: 40,
      failed: 0,
      byInstance: {'web-1': 10, 'web-2': 10, 'web-3': 10, 'web-4': 10},
    })
    expect(stopOne).toMatchObject({stopped: 'web-3', routesBefore: 4, routesAfter: 3, failed: 0})
    expect(cleanup).toMatchObject({processesLeft: 0, registrationsLeft: 0, proxyClosed: true, dirRemoved: true})
    expect(cleanup!.pids).toEqual(instances.map((i) => i.pid))
    for (const {pid} of instances) expect(alive(pid)).toBe(false)
    expect(existsSync(cleanup!.dir as string)).toBe(false)
    expect(records.at(-1)).toMatchObject({type: 'finished', ok: true})
    // the schema of every svc stream: ts and type first
    for (const record of records) expect(Object.keys(record).slice(0, 2)).toEqual(['ts', 'type'])
    expect(listing(home)).toEqual(before)
  })

  it('cleans up and exits 130 on Ctrl-C in the middle', async () => {
    const child = spawnCli(['demo', '--pace', '30s'], env)
    let stdout = ''
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString()
    })
    let stderr = ''
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString()
    })
    // in the pause after step 1: three instance processes run
    await waitForOutput(child, /^ {2}✓ 3 instances registered/, 30_000)
    child.kill('SIGINT')
    expect(await waitForExit(child, 20_000)).toBe(130)
    expect(stderr.trim()).toMatch(/^Error: interrupted during a pause between steps; the demo cleaned up after itself$/)
    expect(stdout).toContain('[5/5] Clean up')
    expect(stdout).toMatch(/processes: +.*: all gone/)
    expect(stdout).not.toContain('[2/5]')
    const pids = [...stdout.matchAll(/^ +web-\d +127\.0\.0\.1:\d+ +(\d+)$/gm)].map((m) => Number(m[1]))
    expect(pids).toHaveLength(3)
    for (const pid of pids) expect(alive(pid)).toBe(false)
    expect(demoDirs()).toEqual([])
  })
})
