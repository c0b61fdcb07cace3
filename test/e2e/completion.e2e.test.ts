import {execFile} from 'node:child_process'
import {chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {BIN, runCli, spawnCli, waitForExit, waitForOutput} from '../helpers/cli.js'

const root = mkdtempSync(path.join(tmpdir(), 'svc-completion-'))
const cache = path.join(root, 'cache')
const bin = path.join(root, 'bin')
const env = {
  XDG_CACHE_HOME: cache,
  XDG_CONFIG_HOME: path.join(root, 'config'),
  SVC_HOME: path.join(root, 'home'),
  SVC_BACKEND: '',
  SVC_PROFILE: '',
}
const bashScript = path.join(cache, 'svc', 'autocomplete', 'functions', 'bash', 'svc.bash')
const zshScript = path.join(cache, 'svc', 'autocomplete', 'functions', 'zsh', '_svc')

/** Runs a shell with `svc` (the built binary) first on PATH, bounded in time. */
function shell(program: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      program,
      args,
      {timeout: 30_000, env: {...process.env, ...env, NO_COLOR: '1', PATH: `${bin}:${process.env.PATH}`}},
      (error, stdout, stderr) =>
        error ? reject(new Error(`${program}: ${stderr || error.message}`)) : resolve(stdout),
    )
  })
}

/** The words bash offers for the line `words` (the last one being completed), as the shell's own completion does. */
async function bashComplete(...words: string[]): Promise<string[]> {
  const out = await shell('bash', [
    '-c',
    // eslint-disable-next-line no-template-curly-in-string -- a bash script
    'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _svc_complete; printf "%s\\n" "${COMPREPLY[@]}"',
    'complete',
    bashScript,
    ...words,
  ])
  return [...new Set(out.split('\n').filter((w) => w !== ''))].sort()
}

describe('shell completion (@oclif/plugin-autocomplete plus service names)', () => {
  let registered: ReturnType<typeof spawnCli> | undefined

  beforeAll(async () => {
    mkdirSync(bin, {recursive: true})
    writeFileSync(path.join(bin, 'svc'), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`)
    chmodSync(path.join(bin, 'svc'), 0o755)
    registered = spawnCli(['register', 'web-frontend', '--port', '8080'], env)
    await waitForOutput(registered, /^registered /)
    for (const sh of ['bash', 'zsh']) expect((await runCli(['autocomplete', sh], {env})).code).toBe(0)
  })

  afterAll(async () => {
    registered?.kill('SIGTERM')
    if (registered) await waitForExit(registered)
  })

  it('completes commands and flags in bash', async () => {
    expect(await bashComplete('svc', 'res')).toEqual(['resolve'])
    expect(await bashComplete('svc', 'chaos', 'kill-i')).toEqual(['kill-instance'])
    expect(await bashComplete('svc', 'resolve', '--pi')).toEqual(['--pick'])
  })

  it('completes service names from the registry in bash', async () => {
    expect(await bashComplete('svc', 'resolve', '')).toEqual(['web-frontend'])
    expect(await bashComplete('svc', 'resolve', 'we')).toEqual(['web-frontend'])
    expect(await bashComplete('svc', 'watch', '')).toEqual(['tree', 'web-frontend'])
    expect(await bashComplete('svc', 'deregister', '')).toEqual(['web-frontend'])
    expect(await bashComplete('svc', 'chaos', 'kill-instance', '')).toEqual(['web-frontend'])
    expect(await bashComplete('svc', 'resolve', '--all', '')).toEqual(['web-frontend'])
    // the registry the line names is the one asked
    const other = `local://${path.join(root, 'empty')}`
    expect(await bashComplete('svc', 'resolve', '--backend', other, '')).toEqual([])
    // flags that take a value are stepped over (from the commands' own flag definitions), and their value is no name
    expect(await bashComplete('svc', 'chaos', 'kill-instance', '-n', '2', '')).toEqual(['web-frontend'])
    expect(await bashComplete('svc', 'resolve', '--pick', 'first', '')).toEqual(['web-frontend'])
    expect(await bashComplete('svc', 'resolve', '--tag', '')).toEqual([])
    // a second argument is not a service name
    expect(await bashComplete('svc', 'deregister', 'web-frontend', 'x')).toEqual([])
  })

  it('adds the service names to the zsh function in place of file names', async () => {
    const script = readFileSync(zshScript, 'utf8')
    expect(script).toMatch(/^#compdef svc\n# svc: service-name completion\n_svc_service_names\(\) \{/)
    expect(script.match(/"1: :_svc_service_names( tree)?" "\*: :_files"/g)).toHaveLength(4)
    await shell('zsh', ['-n', zshScript])
    // the helper alone, with compadd replaced by a printer (a full zsh completion needs a terminal)
    const names = await shell('zsh', [
      '-c',
      // eslint-disable-next-line no-template-curly-in-string -- a zsh script
      'eval "$(sed \'$d\' "$1")"; compadd() { shift; local n; for n; do print -l -- "${(@P)n}"; done }; words=(resolve ""); CURRENT=2; _svc_service_names tree',
      'complete',
      zshScript,
    ])
    expect(names.split('\n').filter((n) => n !== '')).toEqual(['tree', 'web-frontend'])
  })

  it('prints nothing, quickly, when the registry does not answer', async () => {
    const started = Date.now()
    const result = await runCli(['autocomplete', 'services', '--backend', 'zk://127.0.0.1:1'], {env})
    expect(result.code).toBe(0)
    expect(result.stdout).toBe('')
    expect(Date.now() - started).toBeLessThan(15_000)
  })
})
