import {execFile, spawnSync} from 'node:child_process'
import {copyFileSync, existsSync, mkdtempSync, readFileSync, statSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {describe, expect, it} from 'vitest'

import {BIN, ROOT} from '../helpers/cli.js'
import {codeBlocks, docPages, quotedInvocations, readPage, relativeLinks, svcInvocation} from '../helpers/doc-pages.js'

const OCLIF = path.join(ROOT, 'node_modules', '.bin', 'oclif')
const README_LIMIT = 12_288
// what the console blocks show for the fresh HOME each one runs in
const SHOWN_HOME = '/home/me'

interface ManifestFlag {
  name: string
  char?: string
  allowNo?: boolean
}

/** Every command of the binary (svc's and its plugins'), by id as typed (`cluster up`), with its flag spellings. */
function commandFlags(): Map<string, Set<string>> {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {oclif: {plugins: string[]}}
  const manifests = [
    path.join(ROOT, 'oclif.manifest.json'),
    ...pkg.oclif.plugins.map((p) => path.join(ROOT, 'node_modules', p, 'oclif.manifest.json')),
  ]
  const commands = new Map<string, Set<string>>()
  for (const file of manifests) {
    const manifest = JSON.parse(readFileSync(file, 'utf8')) as {
      commands: Record<string, {flags: Record<string, ManifestFlag>}>
    }
    for (const [id, command] of Object.entries(manifest.commands)) {
      const spellings = new Set(['--help', '-h'])
      for (const flag of Object.values(command.flags)) {
        spellings.add(`--${flag.name}`)
        if (flag.allowNo) spellings.add(`--no-${flag.name}`)
        if (flag.char) spellings.add(`-${flag.char}`)
      }

      commands.set(id.replaceAll(':', ' '), spellings)
    }
  }

  return commands
}

/** Why `svc ARGS` is not a real command line of this binary, or undefined when it is. */
function invocationProblem(args: string[], commands: Map<string, Set<string>>): string | undefined {
  const words: string[] = []
  let rest = args
  while (rest.length > 0 && !rest[0]!.startsWith('-')) {
    const word = rest[0]!.split('|', 1)[0]!
    const next = [...words, word].join(' ')
    if (![...commands.keys()].some((id) => id === next || id.startsWith(`${next} `))) break
    words.push(word)
    rest = rest.slice(1)
  }

  const id = words.join(' ')
  const root = id === ''
  const topic = !root && !commands.has(id)
  const allowed = root || topic ? new Set(['--help', '--version', '-h']) : commands.get(id)!
  for (const word of rest) {
    if (!/^--?[a-zA-Z]/.test(word)) continue
    const flag = word.split('=', 1)[0]!
    if (!allowed.has(flag)) return `${flag} is not a flag of svc${root ? '' : ` ${id}`}`
  }

  return undefined
}

describe('docs/commands.md', () => {
  it('is what `npm run docs` (oclif readme) generates from the commands today', async () => {
    const copy = path.join(mkdtempSync(path.join(tmpdir(), 'svc-docs-')), 'commands.md')
    copyFileSync(path.join(ROOT, 'docs', 'commands.md'), copy)
    const env: NodeJS.ProcessEnv = {...process.env, COLUMNS: '120'}
    // as `npm run docs` runs it: not under vitest's NODE_ENV=test
    delete env.NODE_ENV
    await new Promise<void>((resolve, reject) => {
      execFile(
        OCLIF,
        ['readme', '--readme-path', copy, '--no-aliases', '--no-source-links'],
        {cwd: ROOT, env, timeout: 60_000},
        (error, _stdout, stderr) => (error ? reject(new Error(`oclif readme: ${stderr || error.message}`)) : resolve()),
      )
    })
    const fresh = readFileSync(copy, 'utf8')
    expect(fresh).toContain('## `svc config set KEY VALUE`')
    expect(
      readFileSync(path.join(ROOT, 'docs', 'commands.md'), 'utf8'),
      'docs/commands.md is stale: run npm run docs',
    ).toBe(fresh)
  })
})

describe('the README and the docs pages', () => {
  const pages = docPages()

  it('keep the README short, and link every docs page from it', () => {
    expect(statSync(path.join(ROOT, 'README.md')).size).toBeLessThanOrEqual(README_LIMIT)
    const linked = new Set(relativeLinks(readPage('README.md')).map((href) => path.normalize(href)))
    const expected = [
      'docs/commands.md',
      'docs/performance.md',
      'docs/testing.md',
      'docs/security.md',
      'docs/security-registry.md',
      'docs/metrics.md',
      'docs/migrating-from-registrator.md',
      'docs/backends/local.md',
      'docs/backends/zookeeper.md',
      'docs/backends/consul.md',
      'docs/backends/etcd.md',
    ]
    for (const page of expected) expect(existsSync(path.join(ROOT, page)), `${page} exists`).toBe(true)
    const unlinked = [...new Set([...expected, ...pages.filter((p) => p !== 'README.md')])].filter(
      (p) => !linked.has(p),
    )
    expect(unlinked, 'pages the README does not link').toEqual([])
  })

  it('link only to files that exist', () => {
    const broken = pages.flatMap((page) =>
      relativeLinks(readPage(page))
        .filter((href) => !existsSync(path.resolve(ROOT, path.dirname(page), href)))
        .map((href) => `${page}: ${href}`),
    )
    expect(broken).toEqual([])
  })

  it('quote only real commands, each with its own flags', () => {
    const commands = commandFlags()
    const problems = pages.flatMap((page) =>
      quotedInvocations(readPage(page)).flatMap(({quote, args}) => {
        const problem = invocationProblem(args, commands)
        return problem === undefined ? [] : [`${page}: \`${quote}\`: ${problem}`]
      }),
    )
    expect(problems).toEqual([])
  })

  // every ```console block runs as printed, in a fresh HOME shown as /home/me; other captures hold a run's ports and pids
  it.for(pages.filter((page) => codeBlocks(readPage(page)).some((b) => b.info === 'console')))(
    'print what %s quotes in its console blocks',
    (page) => {
      for (const block of codeBlocks(readPage(page)).filter((b) => b.info === 'console')) {
        const home = mkdtempSync(path.join(tmpdir(), 'svc-docs-home-'))
        const shown: string[] = []
        for (const line of block.lines) {
          if (!line.startsWith('$ ')) continue
          const args = svcInvocation(line)
          expect(args, `${page}: only svc command lines run in a console block: ${line}`).toBeDefined()
          const run = spawnSync(process.execPath, [BIN, ...args!.map((a) => a.replaceAll(SHOWN_HOME, home))], {
            cwd: home,
            encoding: 'utf8',
            env: {PATH: process.env.PATH, HOME: home, NO_COLOR: '1'},
            timeout: 20_000,
          })
          const output = `${run.stdout}${run.stderr}`.replaceAll(home, SHOWN_HOME).trimEnd()
          shown.push(line, ...(output === '' ? [] : output.split('\n')))
        }

        expect(shown.join('\n'), `${page}: a console block`).toBe(block.lines.join('\n').trimEnd())
      }
    },
  )
})
