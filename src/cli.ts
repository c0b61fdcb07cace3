// The CLI's entry in the bundle (scripts/bundle.mjs): oclif's core travels inside it, so start-up reads one file
// where it would resolve and read about a hundred.
import {Plugin} from '@oclif/core/config'
import {execute} from '@oclif/core/execute'
import {existsSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

export {settings} from '@oclif/core/settings'

/** Words that name a command or help of one of the core plugins, or ask for help: those load every plugin. */
const EVERY_PLUGIN = new Set(['--help', '--version', '-h', '-v', 'autocomplete', 'help', 'version'])

/**
 * The command file of argv's command when it is one of svc's own (not a plugin's), asked without help. Only
 * the command's file is looked for (`cluster up` is commands/cluster/up.js): the manifest is read once, by oclif.
 */
function ownCommand(commandsDir: string, argv: readonly string[]): boolean {
  if (argv.some((arg) => EVERY_PLUGIN.has(arg))) return false
  const [first, second] = argv
  if (first === undefined || first.startsWith('-')) return false
  const words = first.includes(':') ? first.split(':') : [first]
  if (words.some((w) => !/^[a-z][a-z-]*$/.test(w))) return false
  if (existsSync(path.join(commandsDir, ...words) + '.js')) return true
  return (
    second !== undefined &&
    /^[a-z][a-z-]*$/.test(second) &&
    existsSync(path.join(commandsDir, ...words, second) + '.js')
  )
}

/**
 * Runs the CLI. For one of svc's own commands, oclif gets svc's plugin alone: the core plugins (help,
 * autocomplete, version) add only their own commands, and finding and reading them (a glob over the
 * dependencies, each package's root, package.json and manifest) was a tenth of the start-up (issue 17).
 * Anything else, help included, loads every plugin as before.
 */
export async function runCli(binUrl: string): Promise<void> {
  const root = path.dirname(path.dirname(fileURLToPath(binUrl)))
  const argv = process.argv.slice(2)
  if (!ownCommand(path.join(root, 'dist', 'cli', 'commands'), argv)) {
    await execute({dir: binUrl})
    return
  }

  const plugin = new Plugin({root, isRoot: true})
  await plugin.load()
  await execute({loadOptions: {root, plugins: new Map([[plugin.name, plugin]])}})
}
