import type {Hook} from '@oclif/core'
import {readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'

import type {ValueFlag} from '../lib/completion/scripts.js'

/** After `svc autocomplete` writes its scripts, adds service-name completion to them. */
const hook: Hook.Postrun = async function (options) {
  // `svc autocomplete [SHELL]` runs Create directly (no postrun of its own); plugin installs run autocomplete:create
  if (options.Command.id !== 'autocomplete' && options.Command.id !== 'autocomplete:create') return
  // every command runs this hook: what it needs loads only for the one command it is about (start-up, issue 17)
  const {patchBashScript, patchZshScript, SERVICE_ARG_COMMANDS} = await import('../lib/completion/scripts.js')
  const {bin, cacheDir} = options.config
  const dir = path.join(cacheDir, 'autocomplete', 'functions')
  const valueFlags: ValueFlag[] = []
  for (const id of SERVICE_ARG_COMMANDS) {
    const command = options.config.findCommand(id.replaceAll(' ', ':'))
    for (const flag of Object.values(command?.flags ?? {})) {
      if (flag.type !== 'option' || valueFlags.some((f) => f.names.includes(`--${flag.name}`))) continue
      valueFlags.push({names: [`--${flag.name}`, ...(flag.char ? [`-${flag.char}`] : [])], options: flag.options})
    }
  }

  await patch(path.join(dir, 'bash', `${bin}.bash`), (script) => patchBashScript(script, bin, valueFlags))
  await patch(path.join(dir, 'zsh', `_${bin}`), (script) => patchZshScript(script, bin))
}

async function patch(file: string, change: (script: string) => string): Promise<void> {
  const script = await readFile(file, 'utf8').catch(() => undefined)
  if (script !== undefined) await writeFile(file, change(script))
}

export default hook
