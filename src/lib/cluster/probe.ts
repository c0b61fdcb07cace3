import http from 'node:http'

export {tcpCommand} from '../net.js'

export interface HttpAnswer {
  status: number
  body: string
}

/** One HTTP request to 127.0.0.1, without keep-alive; rejects on network errors and timeouts, not on statuses. */
export function httpRequest(
  host: string,
  port: number,
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  path: string,
  timeoutMs: number,
  body?: string,
  extraHeaders: http.OutgoingHttpHeaders = {},
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = {connection: 'close', ...extraHeaders}
    if (body !== undefined) {
      headers['content-type'] = 'application/json'
      headers['content-length'] = Buffer.byteLength(body)
    }

    const request = http.request({host, port, method, path, headers, agent: false, timeout: timeoutMs}, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.once('error', reject)
      response.once('end', () => {
        resolve({status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8')})
      })
    })
    request.once('timeout', () => {
      request.destroy(new Error(`no answer to ${method} ${path} from ${host}:${port} within ${timeoutMs} ms`))
    })
    request.once('error', reject)
    request.end(body)
  })
}

/** GET or POST expecting 200 and JSON. */
export async function httpJson(
  host: string,
  port: number,
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  path: string,
  timeoutMs: number,
  body?: string,
  headers: http.OutgoingHttpHeaders = {},
): Promise<unknown> {
  const answer = await httpRequest(host, port, method, path, timeoutMs, body, headers)
  if (answer.status !== 200) {
    throw new Error(`${method} ${path} on ${host}:${port}: HTTP ${answer.status} ${answer.body.trim().slice(0, 200)}`)
  }

  return JSON.parse(answer.body) as unknown
}

export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  const code = (error as NodeJS.ErrnoException).code
  return code && !error.message.includes(code) ? `${code}: ${error.message}` : error.message
}
