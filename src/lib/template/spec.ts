import path from 'node:path'

import {quote, UserError} from '../errors.js'

/** One template to render: its source file, the file it renders to, and the command to run when that file changes. */
export interface TemplateSpec {
  source: string
  out: string
  exec?: string
}

/** A flag of the command line as given, in order. */
export interface FlagToken {
  flag: string
  input: string
}

const FORMS = 'give --template IN --out OUT [--exec CMD] per template, or --template IN:OUT[:CMD]'

/**
 * The templates a command line names. `--out` and `--exec` belong to the `--template` before them, so several
 * read as `--template a --out x --exec c --template b --out y`; `--template IN:OUT[:CMD]` is consul-template's form
 * (the command is everything after the second colon).
 */
export function templateSpecs(tokens: readonly FlagToken[]): TemplateSpec[] {
  const specs: Array<{source: string; out?: string; exec?: string; short: boolean}> = []
  for (const {flag, input} of tokens) {
    if (flag === 'template') {
      specs.push(parseTemplateValue(input))
      continue
    }

    if (flag !== 'out' && flag !== 'exec') continue
    const current = specs.at(-1)
    if (!current) throw new UserError(`--${flag} ${quote(input)} comes before any --template`, FORMS)
    if (current.short) {
      throw new UserError(`--${flag} after --template ${quote(current.source)}, which names its output itself`, FORMS)
    }

    if (current[flag] !== undefined) {
      throw new UserError(`two --${flag} for --template ${quote(current.source)}`, FORMS)
    }

    if (input.trim() === '') throw new UserError(`--${flag} is empty`, FORMS)
    current[flag] = input
  }

  if (specs.length === 0) throw new UserError('no --template given', FORMS)
  const seen = new Set<string>()
  return specs.map(({source, out, exec}) => {
    if (out === undefined) throw new UserError(`--template ${quote(source)} has no --out`, FORMS)
    const key = path.resolve(out)
    if (seen.has(key)) throw new UserError(`two templates render to ${quote(out)}`, 'give each template its own --out')
    seen.add(key)
    return exec === undefined ? {source, out} : {source, out, exec}
  })
}

function parseTemplateValue(input: string): {source: string; out?: string; exec?: string; short: boolean} {
  if (input.trim() === '') throw new UserError('--template is empty', FORMS)
  const first = input.indexOf(':')
  if (first === -1) return {source: input, short: false}
  const second = input.indexOf(':', first + 1)
  const source = input.slice(0, first)
  const out = second === -1 ? input.slice(first + 1) : input.slice(first + 1, second)
  const exec = second === -1 ? undefined : input.slice(second + 1)
  if (source === '' || out === '' || exec === '') {
    throw new UserError(`--template ${quote(input)} is not IN:OUT[:CMD]`, FORMS)
  }

  return exec === undefined ? {source, out, short: true} : {source, out, exec, short: true}
}
