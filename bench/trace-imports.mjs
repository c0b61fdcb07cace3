// Preloaded with `node --import`: appends every package an ES module import resolves into to $SVC_IMPORT_TRACE_FILE (the CommonJS tracer rewrites $SVC_TRACE_FILE at exit).
// eslint-disable-next-line n/no-unsupported-features/node-builtins -- a measuring aid, not part of svc: it runs where the bench runs
import {register} from 'node:module'

const hooks = `
import {appendFileSync} from 'node:fs'
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context)
  const match = /node_modules\\/((?:@[^/]+\\/)?[^/]+)/.exec(result.url)
  if (match && process.env.SVC_IMPORT_TRACE_FILE) appendFileSync(process.env.SVC_IMPORT_TRACE_FILE, match[1] + '\\n')
  return result
}
`
register(`data:text/javascript,${encodeURIComponent(hooks)}`)
