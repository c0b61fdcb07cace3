import Handlebars from 'handlebars'

import {forHandlebars, HelperError, templateHelpers} from './helpers.js'
import {ServiceState} from './state.js'

/** A template that failed to compile or render: the file, the line when known, and what went wrong. */
export class TemplateError extends Error {
  override name = 'TemplateError'
  readonly file: string
  readonly line?: number
  readonly detail: string

  constructor(file: string, detail: string, line?: number) {
    super(`${file}${line === undefined ? '' : `:${line}`}: ${detail}`)
    this.file = file
    this.line = line
    this.detail = detail
  }
}

/** One compiled template; `render` reads the registry state given, synchronously. */
export interface CompiledTemplate {
  file: string
  render(state: ServiceState): string
}

/** The line and the message of a Handlebars error: "Parse error on line 3: …" or "… - 2:0". */
function located(error: unknown): {line?: number; detail: string} {
  if (error instanceof HelperError) return {line: error.line, detail: error.message}
  const message = error instanceof Error ? error.message : String(error)
  const parse = /^Parse error on line (\d+):[\s\S]*\n(.*)$/.exec(message)
  if (parse) return {line: Number(parse[1]), detail: `parse error: ${parse[2]}`}
  const suffix = / - (\d+):\d+$/.exec(message)
  if (suffix) return {line: Number(suffix[1]), detail: message.slice(0, suffix.index)}
  const line = (error as {lineNumber?: unknown}).lineNumber
  return typeof line === 'number' ? {line, detail: message} : {detail: message}
}

/**
 * A Handlebars environment of its own with svc's helpers. Output is configuration, not HTML: no escaping. Only
 * known helpers may be called, so a misspelt helper fails when the template is compiled, not at the first render.
 */
export function createEngine(): {compile(file: string, source: string): CompiledTemplate} {
  const hb = Handlebars.create()
  let current = new ServiceState()
  const helpers = templateHelpers(() => current)
  for (const [name, helper] of Object.entries(helpers)) hb.registerHelper(name, forHandlebars(helper))
  const knownHelpers = Object.fromEntries(Object.keys(helpers).map((name) => [name, true]))
  const options = {noEscape: true, knownHelpers, knownHelpersOnly: true}
  return {
    compile(file, source) {
      let template: Handlebars.TemplateDelegate<Record<string, never>>
      try {
        // compile() is lazy: precompile() runs the parser and the compiler now, so errors show at start
        hb.precompile(source, options)
        template = hb.compile(source, options)
      } catch (error) {
        const {line, detail} = located(error)
        throw new TemplateError(file, detail, line)
      }

      return {
        file,
        render(state) {
          current = state
          try {
            return template({})
          } catch (error) {
            const {line, detail} = located(error)
            throw new TemplateError(file, detail, line)
          } finally {
            current = new ServiceState()
          }
        },
      }
    },
  }
}
