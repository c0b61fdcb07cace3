import {createInterface} from 'node:readline'

import {UserError} from '../errors.js'

/**
 * Asks on the terminal before a drill stops something; `yes` skips the question. Without a terminal and without
 * `yes` it refuses: a drill never stops anything unconfirmed.
 */
export async function confirmDrill(question: string, yes: boolean, interactive: boolean): Promise<void> {
  if (yes) return
  if (!interactive) {
    throw new UserError('a drill needs a confirmation and there is no terminal to ask on', 'pass --yes to run it')
  }

  const rl = createInterface({input: process.stdin, output: process.stderr})
  try {
    const answer = await new Promise<string>((resolve) => {
      rl.question(`${question} [y/N] `, resolve)
    })
    if (!/^y(es)?$/i.test(answer.trim())) throw new UserError('drill cancelled', 'answer y to run it, or pass --yes')
  } finally {
    rl.close()
  }
}
