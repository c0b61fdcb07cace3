import type {Hook} from '@oclif/core'
import {closest} from 'fastest-levenshtein'

import {formatError, UserError} from '../lib/errors.js'
import {registratorBackend} from '../lib/usage.js'

/**
 * An unknown command: registrator's positional registry URI named in its svc form; a typo answered with the
 * nearest command, in one line off a terminal, through @oclif/plugin-not-found's prompt on one.
 */
const hook: Hook.CommandNotFound = async function (options) {
  const {bin} = options.config
  const argv = options.argv ?? []
  const svcForm = registratorBackend(options.id)
  if (svcForm === undefined && process.stdin.isTTY && process.stderr.isTTY) {
    // loaded only here: the prompt costs start-up time that a known command must not pay
    const {default: notFound} = await import('@oclif/plugin-not-found')
    return notFound.call(this, options)
  }

  const error = svcForm
    ? new UserError('svc agent takes the registry as a flag, not an argument', `use: ${[svcForm, ...argv].join(' ')}`)
    : new UserError(
        `"${options.id.replaceAll(':', ' ')}" is not a ${bin} command`,
        `did you mean: ${bin} ${nearest(options, argv)}? (${bin} --help lists them)`,
      )
  process.stderr.write(`Error: ${formatError(error)}\n`)
  this.exit(2)
}

/** The typed command line with its command word (or topic and command) replaced by the nearest known one. */
function nearest(options: Parameters<Hook.CommandNotFound>[0], argv: string[]): string {
  const typed = options.id.split(':')
  const visible = options.config.commands.filter((c) => !c.hidden).map((c) => c.id)
  const topic = options.config.findTopic(typed[0]!) ? typed[0] : undefined
  const words = topic === undefined ? 1 : 2
  const names =
    topic === undefined
      ? [...new Set(visible.map((id) => id.split(':')[0]!))]
      : visible.filter((id) => id.startsWith(`${topic}:`))
  const guess = closest(typed.slice(0, words).join(':'), names)
  return [guess.replaceAll(':', ' '), ...typed.slice(words), ...argv].join(' ')
}

export default hook
