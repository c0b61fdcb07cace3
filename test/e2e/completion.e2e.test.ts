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

describe('shell completion (@oclif/plugin-autocomplete plus service names, and fish)', () => {
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

  it('wraps the zsh function of the plugin, without editing it, to complete service names', async () => {
    const script = readFileSync(zshScript, 'utf8')
    // the plugin's own text stays as it wrote it; the wrapper takes over its last line, the call of _svc
    expect(script).toMatch(/^#compdef svc\n/)
    expect(script).toContain('"*: :_files"')
    expect(script).toMatch(/\n_svc_with_services "\$@"\ncompdef _svc_with_services svc\n$/)
    await shell('zsh', ['-n', zshScript])
    // the wrapper alone, the plugin's last two lines cut off and compadd replaced by a printer (a full zsh
    // completion needs a terminal)
    const complete = (...words: string[]): Promise<string> =>
      shell('zsh', [
        '-c',
        // eslint-disable-next-line no-template-curly-in-string -- a zsh script
        'f="$1"; shift; eval "$(sed \'$d\' "$f" | sed \'$d\')"; compadd() { shift; local n; for n; do print -l -- "${(@P)n}"; done }; _svc() { print plugin }; words=(svc "$@"); CURRENT=$#words; _svc_with_services',
        'complete',
        zshScript,
        ...words,
      ])
    const lines = async (...words: string[]): Promise<string[]> =>
      (await complete(...words)).split('\n').filter((n) => n !== '')
    expect(await lines('watch', '')).toEqual(['tree', 'web-frontend'])
    expect(await lines('chaos', 'kill-instance', '')).toEqual(['web-frontend'])
    expect(await lines('resolve', '-b', `local://${path.join(root, 'home', 'registry')}`, '')).toEqual(['web-frontend'])
    expect(await lines('resolve', '--pi')).toEqual(['plugin'])
    expect(await lines('resolve', 'web-frontend', '')).toEqual(['plugin'])
  })

  it('completes commands, flags and service names in fish', async () => {
    const result = await runCli(['autocomplete', 'fish'], {env})
    expect(result.code).toBe(0)
    const script = path.join(root, 'svc.fish')
    writeFileSync(script, result.stdout)
    const fish = async (line: string): Promise<string[]> =>
      (await shell('fish', ['-c', `source ${script}; complete -C "${line}"`]))
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => l.split('\t')[0]!)
        .sort()
    expect(await fish('svc res')).toEqual(['resolve'])
    expect(await fish('svc chaos kill-i')).toEqual(['kill-instance'])
    expect(await fish('svc resolve --pi')).toEqual(['--pick'])
    expect(await fish('svc resolve --pick ')).toEqual(['first', 'random', 'round-robin'])
    expect(await fish('svc resolve ')).toEqual(['web-frontend'])
    expect(await fish('svc watch ')).toEqual(['tree', 'web-frontend'])
    expect(await fish('svc resolve web-frontend ')).toEqual([])
  })

  it('prints nothing, quickly, when the registry does not answer', async () => {
    const started = Date.now()
    const result = await runCli(['autocomplete', 'services', '--backend', 'zk://127.0.0.1:1'], {env})
    expect(result.code).toBe(0)
    expect(result.stdout).toBe('')
    expect(Date.now() - started).toBeLessThan(15_000)
  })
})
