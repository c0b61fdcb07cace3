import {type ChildProcess, execFile, spawn} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {ROOT, waitForExit, waitForOutput} from '../helpers/cli.js'

const root = mkdtempSync(path.join(tmpdir(), 'svc-pack-'))
const prefix = path.join(root, 'prefix')
const elsewhere = path.join(root, 'elsewhere')
const installed = path.join(prefix, 'bin', 'svc')
const registry = `local://${path.join(root, 'reg')}`
// no config, cache or state of the machine's user: the installed svc sees a fresh home
const env: NodeJS.ProcessEnv = {
  ...process.env,
  HOME: path.join(root, 'home'),
  XDG_CONFIG_HOME: path.join(root, 'config'),
  XDG_CACHE_HOME: path.join(root, 'cache'),
  SVC_HOME: path.join(root, 'svc-home'),
  SVC_BACKEND: '',
  SVC_PROFILE: '',
}
// as a user's shell: no colour settings, and no NODE_ENV=test (under which oclif looks for TypeScript sources)
for (const name of ['NO_COLOR', 'FORCE_COLOR', 'NODE_ENV']) delete env[name]
// eslint-disable-next-line no-control-regex -- ANSI escape sequences are what this looks for
const ANSI = /\u001B\[/

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

function run(
  file: string,
  args: string[],
  opts: {cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number} = {},
): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      {
        cwd: opts.cwd ?? elsewhere,
        env: opts.env ?? env,
        timeout: opts.timeoutMs ?? 30_000,
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0
        resolve({code, stdout, stderr: error && code === 1 && !stderr ? error.message : stderr})
      },
    )
  })
}

const svc = (args: string[], extra: NodeJS.ProcessEnv = {}) => run(installed, args, {env: {...env, ...extra}})

describe('npm pack, then npm install -g of the tarball, gives a working svc', () => {
  let files: string[] = []
  let registered: ChildProcess | undefined

  beforeAll(async () => {
    mkdirSync(elsewhere, {recursive: true})
    // dist/ is already built (the test entry builds first); --ignore-scripts keeps pack from rebuilding it under other tests
    const pack = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', root], {
      cwd: ROOT,
      timeoutMs: 120_000,
    })
    expect(pack.code, pack.stderr).toBe(0)
    const [info] = JSON.parse(pack.stdout) as Array<{filename: string; files: Array<{path: string}>}>
    files = info!.files.map((f) => f.path)
    const install = await run(
      'npm',
      [
        'install',
        '-g',
        '--prefix',
        prefix,
        '--no-audit',
        '--no-fund',
        '--prefer-offline',
        path.join(root, info!.filename),
      ],
      {timeoutMs: 400_000},
    )
    expect(install.code, install.stderr).toBe(0)
  }, 600_000)

  afterAll(async () => {
    registered?.kill('SIGTERM')
    if (registered) await waitForExit(registered)
    rmSync(root, {recursive: true, force: true})
  })

  it('packs what bin/run.js needs, and no sources or tests', () => {
    for (const file of [
      'bin/run.js',
      'oclif.manifest.json',
      'dist/cli/cli.js',
      'dist/cli/commands/resolve.js',
      'dist/cli/hooks/completion.js',
      'dist/lib/demo/instance.js',
      'package.json',
    ]) {
      expect(files).toContain(file)
    }

    expect(files.filter((f) => f.startsWith('src/') || f.startsWith('test/'))).toEqual([])
  })

  it('answers --version and help from any directory', async () => {
    const version = await svc(['--version'])
    expect(version.code).toBe(0)
    expect(version.stdout).toMatch(/^svc-discovery\/\d+\.\d+\.\d+ \S+ node-v\d+/)
    const help = await svc(['help'])
    expect(help.code).toBe(0)
    for (const command of ['register', 'resolve', 'watch', 'agent', 'proxy', 'cluster', 'config', 'autocomplete']) {
      expect(help.stdout).toContain(command)
    }

    expect((await svc(['help', 'resolve'])).stdout).toContain('$ svc resolve web --tag v2 --json')
  })

  it('registers and resolves against the local backend', async () => {
    registered = spawn(installed, ['register', 'packed', '--port', '9090', '--backend', registry], {
      cwd: elsewhere,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    await waitForOutput(registered, /^registered packed /)
    const resolved = await svc(['resolve', 'packed', '--json', '--backend', registry])
    expect(resolved.code, resolved.stderr).toBe(0)
    expect(JSON.parse(resolved.stdout)).toMatchObject([{service: 'packed', port: 9090, health: 'passing'}])
    expect((await svc(['resolve', 'packed', '--pick', '--backend', registry])).stdout).toBe('127.0.0.1:9090\n')
  })

  it('serves the documented library entry (openRegistry, the types, runProxy) to an importing program', async () => {
    const app = path.join(root, 'app')
    mkdirSync(path.join(app, 'node_modules'), {recursive: true})
    const pkg = path.join(prefix, 'lib', 'node_modules', 'svc-discovery')
    symlinkSync(pkg, path.join(app, 'node_modules', 'svc-discovery'))
    expect(files).toContain('dist/lib/index.d.ts')
    expect(existsSync(path.join(pkg, 'dist', 'lib', 'index.d.ts'))).toBe(true)
    const program = path.join(app, 'use.mjs')
    writeFileSync(
      program,
      [
        "import {openRegistry, runProxy, HEALTH_VALUES} from 'svc-discovery'",
        `const registry = await openRegistry(${JSON.stringify(`local://${path.join(root, 'lib-reg')}`)})`,
        "const handle = await registry.register({service: 'lib', address: '127.0.0.1', port: 7070})",
        "const [found] = await registry.listInstances('lib')",
        'await handle.close()',
        'await registry.close()',
        'console.log(JSON.stringify({port: found.port, runProxy: typeof runProxy, health: HEALTH_VALUES}))',
      ].join('\n'),
    )
    const used = await run(process.execPath, [program], {cwd: app})
    expect(used.code, used.stderr).toBe(0)
    expect(JSON.parse(used.stdout)).toEqual({
      port: 7070,
      runProxy: 'function',
      health: ['passing', 'warning', 'critical', 'unknown'],
    })
  })

  it('colours help only when colour is wanted, and never under NO_COLOR', async () => {
    expect((await svc(['help'], {FORCE_COLOR: '1'})).stdout).toMatch(ANSI)
    const plain = await svc(['help'], {FORCE_COLOR: '1', NO_COLOR: '1'})
    expect(plain.stdout).toContain('USAGE')
    expect(plain.stdout).not.toMatch(ANSI)
    const error = await svc(['resolve', '--backend', 'nope'], {NO_COLOR: '1'})
    expect(error.code).toBe(2)
    expect(error.stderr).toBe(
      'Error: --backend: unknown backend "nope": use local, zk, consul or etcd, or a URI such as zk://127.0.0.1:2181/services\n',
    )
    expect((await svc(['resolve', '--backend', registry], {NO_COLOR: '1'})).stdout).not.toMatch(ANSI)
  })
})
