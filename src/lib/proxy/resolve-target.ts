import type {RouteMatch, RouteTable, UpstreamPool} from './routes.js'
import {normalizeTarget} from './target.js'

/** Why a request target is refused; `close` when the connection cannot go on after the answer. */
export interface Refusal {
  status: number
  error: string
  close?: boolean
}

/**
 * The route for a request target, or why it is refused, the same on both engines: the target must be origin-form,
 * within the size limit, and keep naming the same service once its dot segments are resolved (`/a/../b/` reaches
 * neither).
 */
export function resolveTarget<P extends UpstreamPool>(
  table: RouteTable<P>,
  url: string,
  host: string | undefined,
  opts: {maxUrlBytes: number; hostRouting: boolean},
): RouteMatch<P> | Refusal {
  if (url.length > opts.maxUrlBytes)
    return {status: 414, error: `request target longer than ${opts.maxUrlBytes} bytes`, close: true}
  if (url.codePointAt(0) !== 47) {
    return {
      status: 400,
      error: 'only origin-form request targets (/<service>/<path>) are served: svc proxy is not an open proxy',
    }
  }

  const target = normalizeTarget(url)
  if (!target.ok) {
    if (target.problem === 'backslash') return {status: 400, error: 'a backslash in the path is refused'}
    if (target.problem === 'encoded-slash')
      return {status: 400, error: 'an encoded slash or backslash (%2f, %5c) in the path is refused'}
    return {status: 404, error: 'the path climbs above the root with ..'}
  }

  const hostKey = opts.hostRouting ? host : undefined
  const match = table.match(target.url, hostKey)
  if (match === undefined) return {status: 404, error: 'no service named in the path: use /<service>/<path>'}
  if (target.url !== url && table.match(url, hostKey)?.service !== match.service) {
    return {
      status: 404,
      error: `the path's dot segments lead out of the service it names: send ${target.url} instead`,
    }
  }

  return match
}
