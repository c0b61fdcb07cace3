import {Config} from '@oclif/core'
import {describe, expect, it} from 'vitest'

import {ROOT, runCli} from '../helpers/cli.js'

const config = await Config.load(ROOT)
const commands = config.commands.filter((c) => !c.hidden)

describe('duration flags in --help', () => {
  it.each(commands.map((c) => [c.id.replaceAll(':', ' '), c.id] as const))(
    'svc %s: every default shown parses back, through the flag itself, to the flag default',
    async (_name, id) => {
      const help = await runCli([...id.split(':'), '--help'], {env: {NO_COLOR: '1', COLUMNS: '400'}})
      expect(help.code).toBe(0)
      const command = await config.findCommand(id)!.load()
      for (const [name, flag] of Object.entries({...command.baseFlags, ...command.flags})) {
        if (flag.type !== 'option' || flag.helpValue !== '<duration>') continue
        const line = help.stdout.split('\n').find((l) => l.includes(`--${name}=<duration>`))
        expect(line, `--${name} in svc ${id} --help`).toBeDefined()
        const shown = /\[default: ([^\]]+)\]/.exec(line!)?.[1]
        if (flag.default === undefined) {
          expect(shown, `--${name} has no default, and shows none`).toBeUndefined()
          continue
        }

        expect(shown, `--${name} shows its default`).toMatch(/^\d+(\.\d+)?(ms|s|m|h)$/)
        const parsed = await flag.parse(shown!, {} as never, flag as never)
        expect(parsed, `--${name} [default: ${shown}]`).toBe(flag.default)
      }
    },
  )

  it('covers the duration flags of the commands the issue names', () => {
    const durations = commands.flatMap((c) =>
      Object.values(c.flags)
        .filter((f) => f.type === 'option' && f.helpValue === '<duration>')
        .map((f) => `${c.id} --${f.name}`),
    )
    for (const expected of [
      'proxy --connect-timeout',
      'proxy --timeout',
      'register --check-interval',
      'watch --debounce',
      'cluster:up --timeout',
      'agent --retry-interval',
    ])
      expect(durations).toContain(expected)
  })
})
