import {mkdtempSync, readFileSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {describe, expect, it} from 'vitest'

import {
  activeProfile,
  configPath,
  configuredValues,
  emptyConfig,
  getValue,
  listRows,
  loadConfig,
  saveConfig,
  setValue,
  type SvcConfig,
  unsetValue,
  validateKey,
} from '../../src/lib/config/index.js'
import {formatError, UserError} from '../../src/lib/errors.js'

const KEYS = ['backend', 'token', 'zk-auth', 'cacert']

/** The one line svc prints for what fn throws. */
function errorLine(fn: () => unknown): string {
  try {
    fn()
  } catch (error) {
    return formatError(error)
  }

  throw new Error('expected an error')
}

function sample(): SvcConfig {
  let config = emptyConfig()
  config = setValue(config, 'backend', 'zk://shared:2181')
  config = setValue(config, 'cacert', '/etc/ca.pem')
  config = setValue(config, 'backend', 'consul://prod:8500', 'prod')
  config = setValue(config, 'token', 'prod-token', 'prod')
  config = setValue(config, 'backend', 'etcd://dev:2379', 'dev')
  return config
}

/** What the command sees for each key: flags (oclif has merged env into them) first, then the config. */
function effective(config: SvcConfig, given: Record<string, string | undefined>): Record<string, string | undefined> {
  return {...given, ...configuredValues(config, given, activeProfile(config, given.profile))}
}

describe('svc config precedence: flag > environment > profile > default', () => {
  it('uses the shared defaults when no profile is active', () => {
    expect(effective(sample(), {})).toMatchObject({backend: 'zk://shared:2181', cacert: '/etc/ca.pem'})
  })

  it('lets the named profile beat the defaults, key by key', () => {
    expect(effective(sample(), {profile: 'prod'})).toMatchObject({
      backend: 'consul://prod:8500',
      token: 'prod-token',
      cacert: '/etc/ca.pem',
    })
  })

  it('uses default-profile when neither --profile nor SVC_PROFILE names one, and a named one beats it', () => {
    const config = setValue(sample(), 'default-profile', 'dev')
    expect(effective(config, {}).backend).toBe('etcd://dev:2379')
    expect(effective(config, {profile: 'prod'}).backend).toBe('consul://prod:8500')
    // SVC_PROFILE="" (unset in practice) falls back to the default profile
    expect(effective(config, {profile: ''}).backend).toBe('etcd://dev:2379')
  })

  it('never replaces a value that a flag or an environment variable gave', () => {
    const given = {profile: 'prod', backend: 'local:///flag', token: 'from-env'}
    expect(effective(sample(), given)).toMatchObject({
      backend: 'local:///flag',
      token: 'from-env',
      cacert: '/etc/ca.pem',
    })
    // an empty environment variable (SVC_BACKEND=) counts as unset
    expect(effective(sample(), {backend: ''}).backend).toBe('zk://shared:2181')
  })

  it('fails with the fix when the named profile does not exist', () => {
    expect(errorLine(() => activeProfile(sample(), 'stage'))).toMatch(/no profile "stage".*use one of: prod, dev/)
    expect(() => setValue(sample(), 'default-profile', 'stage')).toThrow(UserError)
  })
})

describe('svc config editing', () => {
  it('validates keys against the backend flags and profile names', () => {
    expect(validateKey('--token', KEYS)).toBe('token')
    expect(errorLine(() => validateKey('color', KEYS))).toMatch(
      /unknown setting "color": use one of: default-profile, backend/,
    )
    expect(() => setValue(emptyConfig(), 'backend', 'zk', '../x')).toThrow(/invalid profile name/)
  })

  it('gets, unsets, and removes a profile left empty along with the default profile naming it', () => {
    let config = setValue(sample(), 'default-profile', 'dev')
    expect(getValue(config, 'token', 'prod')).toBe('prod-token')
    expect(errorLine(() => getValue(config, 'token'))).toMatch(
      /token is not set: set it with: svc config set token VALUE/,
    )
    config = unsetValue(config, 'backend', 'dev')
    expect(config.profiles.dev).toBeUndefined()
    expect(config.defaultProfile).toBeUndefined()
  })

  it('redacts secrets in listings', () => {
    const config = setValue(sample(), 'zk-auth', 'digest:u:p', 'dev')
    const rows = listRows(config)
    expect(rows).toContainEqual({profile: 'prod', key: 'token', value: '***'})
    expect(rows).toContainEqual({profile: 'dev', key: 'zk-auth', value: '***'})
    expect(rows).toContainEqual({profile: '', key: 'cacert', value: '/etc/ca.pem'})
    expect(JSON.stringify(rows)).not.toContain('prod-token')
  })
})

describe('the config file', () => {
  it('lives under XDG_CONFIG_HOME, else ~/.config', () => {
    expect(configPath({XDG_CONFIG_HOME: '/x'})).toBe('/x/svc/config.json')
    expect(configPath({HOME: '/home/u'})).toBe('/home/u/.config/svc/config.json')
  })

  it('is written 0600 in a 0700 directory and read back', () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'svc-config-')), 'svc', 'config.json')
    saveConfig(sample(), file)
    expect((statSync(file).mode % 0o1000).toString(8)).toBe('600')
    expect((statSync(path.dirname(file)).mode % 0o1000).toString(8)).toBe('700')
    expect(loadConfig(file)).toEqual(sample())
    expect(JSON.parse(readFileSync(file, 'utf8'))).toHaveProperty('profiles.prod.token', 'prod-token')
  })

  it('is empty when missing, and a one-line error naming the file and the fix when corrupt', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'svc-config-'))
    const file = path.join(dir, 'config.json')
    expect(loadConfig(file)).toEqual(emptyConfig())
    writeFileSync(file, '{"defaults": ')
    expect(() => loadConfig(file)).toThrow(new RegExp(`the config file ${file} is not valid JSON`))
    writeFileSync(file, '{"profiles": {"prod": ["zk"]}}')
    expect(() => loadConfig(file)).toThrow(/malformed: profile "prod" must be an object of strings/)
    writeFileSync(file, '{"backend": 42}')
    expect(() => loadConfig(file)).toThrow(/malformed: unknown key "backend" at the top level/)
    writeFileSync(file, '{"profiles": {"prod": {"backend": 42}}}')
    expect(() => loadConfig(file)).toThrow(/malformed: backend in profile "prod" must be a string, not 42/)
    expect(errorLine(() => loadConfig(file))).toContain(`remove it (rm ${file})`)
  })
})
