import {readFile, stat} from 'node:fs/promises'
import path from 'node:path'

import {errorMessage, quote, UserError} from '../errors.js'
import {type CompiledTemplate, createEngine, TemplateError} from './engine.js'
import type {TemplateSpec} from './spec.js'

/** A template ready to render: what the command line said, compiled. */
export interface LoadedTemplate {
  spec: TemplateSpec
  compiled: CompiledTemplate
}

const SYNTAX_HINT = 'fix the template (handlebars syntax; the helpers are listed in docs/template.md)'

/** A template error as a usage error (exit 2): one line naming the file and the line. */
export function templateUsageError(error: TemplateError): UserError {
  return new UserError(`template ${error.message}`, SYNTAX_HINT)
}

/** Reads and compiles every template, and checks that each output's directory exists (unless nothing is written). */
export async function loadTemplates(specs: TemplateSpec[], opts: {dryRun: boolean}): Promise<LoadedTemplate[]> {
  const engine = createEngine()
  const loaded: LoadedTemplate[] = []
  for (const spec of specs) {
    let source: string
    try {
      source = await readFile(spec.source, 'utf8')
    } catch (error) {
      throw new UserError(`cannot read template ${quote(spec.source)} (${errorMessage(error)})`, 'check the path')
    }

    try {
      loaded.push({spec, compiled: engine.compile(spec.source, source)})
    } catch (error) {
      throw error instanceof TemplateError ? templateUsageError(error) : error
    }

    if (opts.dryRun) continue
    const dir = path.dirname(path.resolve(spec.out))
    const info = await stat(dir).catch(() => undefined)
    if (!info?.isDirectory()) {
      throw new UserError(`the directory of --out ${quote(spec.out)} does not exist`, `create ${dir} first`)
    }
  }

  return loaded
}
