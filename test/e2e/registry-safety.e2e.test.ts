import {chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'

import {runCli} from '../helpers/cli.js'
import {recordSecret} from '../helpers/secrets.js'

const root = mkdtempSync(path.join(tmpdir(), 'svc-safety-e2e-'))
const env = {SVC_BACKEND: '', XDG_CONFIG_HOME: path.join(root, 'config'), SVC_HOME: path.join(root, 'home')}
const mode = (file: string): string => (statSync(file).mode % 0o1_0000).toString(8)

afterAll(() => rmSync(root, {recursive: true, force: true}))

describe('reads never change the directory they read', () => {
  it('svc resolve -b local://DIR leaves a 0755 directory 0755 and creates nothing in it', async () => {
    const dir = path.join(root, 'shared')
    mkdirSync(path.join(dir, 'web'), {recursive: true})
    writeFileSync(path.join(dir, 'notes.txt'), 'not a registry\n')
    chmodSync(dir, 0o755)
    for (const args of [['resolve'], ['resolve', 'web', '--all'], ['resolve', '--json']]) {
      const result = await runCli([...args, '-b', `local://${dir}`], {env})
      expect(result.stderr).not.toMatch(/tightened/)
    }

    expect(mode(dir)).toBe('755')
    expect(readdirSync(dir).sort()).toEqual(['notes.txt', 'web'])
  })

  it('refuses to write into a directory that is not an svc registry and is not empty, naming it', async () => {
    const dir = path.join(root, 'etc-like')
    mkdirSync(dir)
    writeFileSync(path.join(dir, 'passwd'), 'root:x:0:0\n')
    chmodSync(dir, 0o755)
    const result = await runCli(['register', 'web', '--port', '8080', '-b', `local://${dir}`], {env})
    expect(result.code).toBe(2)
    expect(result.stderr).toBe(
      `Error: refusing to write into ${dir}: it is not an svc registry and it is not empty: ` +
        'point SVC_HOME or --backend local:///path at an empty directory or one svc created\n',
    )
    expect(mode(dir)).toBe('755')
    expect(readdirSync(dir)).toEqual(['passwd'])
  })
})

describe('svc config list never prints a backend password', () => {
  it('shows the saved URI as user:***@, in the table and in --json', async () => {
    const password = 'pw-never-printed-7f3a'
    recordSecret(password)
    const uri = `etcd://alice:${password}@127.0.0.1:2379/services`
    expect((await runCli(['config', 'set', 'backend', uri], {env})).code).toBe(0)
    const table = await runCli(['config', 'list'], {env})
    const json = await runCli(['config', 'list', '--json'], {env})
    for (const result of [table, json]) {
      expect(result.code).toBe(0)
      expect(result.stdout + result.stderr).not.toContain(password)
    }

    expect(table.stdout).toContain('etcd://alice:***@127.0.0.1:2379/services')
    const rows = (JSON.parse(json.stdout) as {settings: Array<{key: string; value: string}>}).settings
    expect(rows.find((r) => r.key === 'backend')?.value).toBe('etcd://alice:***@127.0.0.1:2379/services')
  })
})
