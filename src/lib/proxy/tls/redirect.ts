import {createServer, type IncomingMessage, type Server, type ServerResponse} from 'node:http'

/**
 * The plain listener under `--redirect-https`: every request gets 308 to the same host and target over https
 * (the TLS listener's port unless it is 443), so methods and bodies are kept by clients that follow it.
 */
export function redirectServer(tlsPort: () => number): Server {
  return createServer({requireHostHeader: false}, (req: IncomingMessage, res: ServerResponse) => {
    const host = hostName(req.headers.host)
    if (host === undefined) {
      res.writeHead(400, {'content-type': 'text/plain', connection: 'close'}).end('a Host header is needed\n')
      return
    }

    const port = tlsPort()
    const location = `https://${host}${port === 443 ? '' : `:${port}`}${req.url ?? '/'}`
    res.writeHead(308, {location, 'content-type': 'text/plain', 'content-length': 0}).end()
    req.resume()
  })
}

/** The Host header without its port (IPv6 literals keep their brackets), or undefined when it is unusable. */
export function hostName(host: string | undefined): string | undefined {
  if (host === undefined || host === '') return undefined
  const bracket = /^(\[[\da-f:.]+\])(?::\d+)?$/i.exec(host)
  if (bracket) return bracket[1]
  const plain = /^([\w.-]+)(?::\d+)?$/.exec(host)
  return plain?.[1]
}
