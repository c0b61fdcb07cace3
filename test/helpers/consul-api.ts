import {request as httpRequest} from 'node:http'

import type {HostPort} from '../../src/lib/registry/spec.js'

/**
 * One call to Consul's HTTP API straight (`path` with its /v1 prefix), outside svc: to check what svc stored,
 * or to set a server up. Resolves with the JSON answer (undefined when empty); any status but 200 rejects.
 */
export function consulHttp(
  host: HostPort,
  method: string,
  path: string,
  opts: {token?: string; body?: unknown} = {},
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      {
        host: host.host,
        port: host.port,
        method,
        path,
        timeout: 5000,
        headers: opts.token ? {'x-consul-token': opts.token} : {},
      },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          text += chunk
        })
        res.on('end', () => {
          if (res.statusCode === 200) resolve(text === '' ? undefined : (JSON.parse(text) as unknown))
          else reject(new Error(`${method} ${path}: ${res.statusCode} ${text.trim()}`))
        })
      },
    )
    request.on('timeout', () => request.destroy(new Error(`${method} ${path}: timed out`)))
    request.on('error', reject)
    request.end(opts.body === undefined ? undefined : JSON.stringify(opts.body))
  })
}
