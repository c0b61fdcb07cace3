import {mkdtempSync, readFileSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {describe, expect, it} from 'vitest'

import {runCli} from '../helpers/cli.js'

const root = mkdtempSync(path.join(tmpdir(), 'svc-config-e2e-'))
const configHome = path.join(root, 'config')
const file = path.join(configHome, 'svc', 'config.json')
const base = {XDG_CONFIG_HOME: configHome, SVC_HOME: path.join(root, 'home'), SVC_BACKEND: '', SVC_PROFILE: ''}
const svc = (args: string[], env: Record<string, string> = {}) =>
  runCli(args, {env: {...base, CONSUL_HTTP_TOKEN: '', ...env}})
const reg = (name: string) => `local://${path.join(root, name)}`

/** The registry a command used, read from the one-line "not registered on <backend>" error. */
async function usedRegistry(args: string[], env: Record<string, string> = {}): Promise<string> {
  const result = await svc(['resolve', 'nothing-here', ...args], env)
  expect(result.code).toBe(1)
  return /registered on (\S+):/.exec(result.stderr)?.[1] ?? result.stderr
}

describe('svc config set|get|list|unset', () => {
  it('saves settings 0600 in a 0700 directory, reads them back, and lists them without secrets', async () => {
    expect((await svc(['config', 'set', 'backend', reg('shared')])).code).toBe(0)
    expect((await svc(['config', 'set', 'backend', reg('prod'), '--profile', 'prod'])).code).toBe(0)
    const token = await svc(['config', 'set', 'token', 'very-secret-token', '--profile', 'prod'])
    expect(token.code).toBe(0)
    expect(token.stdout).toBe('')
    expect(token.stderr).toBe(`svc: set token in profile prod in ${file}\n`)
    expect((statSync(file).mode % 0o1000).toString(8)).toBe('600')
    expect((statSync(path.dirname(file)).mode % 0o1000).toString(8)).toBe('700')

    expect((await svc(['config', 'get', 'backend', '--profile', 'prod'])).stdout).toBe(`${reg('prod')}\n`)
    const missing = await svc(['config', 'get', 'token'])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toBe('Error: token is not set: set it with: svc config set token VALUE\n')

    const list = await svc(['config', 'list'])
    expect(list.code).toBe(0)
    expect(list.stdout).toMatch(/^PROFILE\s+KEY\s+VALUE\n\(all\)\s+backend\s+local:\/\/\S+shared\n/)
    expect(list.stdout).toMatch(/prod\s+token\s+\*\*\*\n/)
    expect(list.stdout).not.toContain('very-secret-token')
    const json = await svc(['config', 'list', '--json'])
    expect(JSON.parse(json.stdout)).toMatchObject({
      file,
      settings: expect.arrayContaining([{profile: 'prod', key: 'token', value: '***'}]),
    })
    expect(json.stdout).not.toContain('very-secret-token')
    expect(readFileSync(file, 'utf8')).toContain('very-secret-token')
  })

  it('applies flag > environment > profile > default when a command opens the registry', async () => {
    expect(await usedRegistry([])).toBe(reg('shared'))
    expect(await usedRegistry(['--profile', 'prod'])).toBe(reg('prod'))
    expect(await usedRegistry([], {SVC_PROFILE: 'prod'})).toBe(reg('prod'))
    expect((await svc(['config', 'set', 'default-profile', 'prod'])).code).toBe(0)
    expect(await usedRegistry([])).toBe(reg('prod'))
    expect(await usedRegistry([], {SVC_BACKEND: reg('env')})).toBe(reg('env'))
    expect(await usedRegistry(['--backend', reg('flag')], {SVC_BACKEND: reg('env')})).toBe(reg('flag'))
    expect((await svc(['config', 'unset', 'default-profile'])).code).toBe(0)
    expect(await usedRegistry([])).toBe(reg('shared'))
  })

  it('rejects unknown keys, unknown profiles and bad values with one line naming the fix', async () => {
    const key = await svc(['config', 'set', 'colour', 'blue'])
    expect(key.code).toBe(2)
    expect(key.stderr).toMatch(/^Error: unknown setting "colour": use one of: default-profile, backend, token\b.*\n$/)
    const profile = await svc(['resolve', '--profile', 'stage'])
    expect(profile.code).toBe(2)
    expect(profile.stderr).toBe(
      'Error: no profile "stage" in the svc config: use one of: prod, or create it with: svc config set backend URI --profile stage\n',
    )
    const defaultProfile = await svc(['config', 'set', 'default-profile', 'stage'])
    expect(defaultProfile.stderr).toMatch(/^Error: no profile "stage"/)
  })

  it('names the file and the fix when the config file is corrupt', async () => {
    const corrupt = path.join(root, 'corrupt')
    const env = {XDG_CONFIG_HOME: corrupt}
    expect((await svc(['config', 'set', 'backend', 'zk'], env)).code).toBe(0)
    writeFileSync(path.join(corrupt, 'svc', 'config.json'), '{"defaults": {')
    for (const args of [['resolve'], ['config', 'list']]) {
      const result = await svc(args, env)
      expect(result.code).toBe(2)
      const lines = result.stderr.trim().split('\n')
      expect(lines).toHaveLength(1)
      expect(lines[0]).toContain(`Error: the config file ${path.join(corrupt, 'svc', 'config.json')} is not valid JSON`)
      expect(lines[0]).toContain('remove it (rm ')
    }
  })
})
