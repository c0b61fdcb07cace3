import {createHash} from 'node:crypto'
import {createServer, type IncomingMessage, type Server, type ServerResponse} from 'node:http'
import type {AddressInfo} from 'node:net'

import {WebSocketServer} from 'ws'

/** A real HTTP upstream on 127.0.0.1 for proxy tests: the article's pages, an echo, an upload hasher, a WebSocket echo. */
export interface TestUpstream {
  name: string
  port: number
  /** Requests served, by path (without the query). */
  hits: number
  /** Stops listening and cuts open connections, like a killed process. */
  kill(): Promise<void>
  /** Listens again on the same port. */
  restart(): Promise<void>
}

/**
 * Routes: `/` says "This is <name>.", `/user?id=N` says "It's user N.", `/echo` returns the request as JSON,
 * `/upload` hashes the streamed body (sha256 hex and byte count), `/status/N` answers N, `/slow?ms=N` waits.
 * Upgrades to WebSocket echo every message prefixed with the name.
 */
export async function startUpstream(name: string, port = 0): Promise<TestUpstream> {
  let server: Server
  let wss: WebSocketServer
  const upstream: TestUpstream = {
    name,
    port,
    hits: 0,
    async kill() {
      wss.close()
      for (const client of wss.clients) client.terminate()
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
    },
    async restart() {
      await listen()
    },
  }

  const listen = async (): Promise<void> => {
    server = createServer((req, res) => {
      upstream.hits++
      handle(name, req, res)
    })
    server.keepAliveTimeout = 5000
    wss = new WebSocketServer({server})
    wss.on('connection', (socket) => {
      socket.on('message', (data, isBinary) => socket.send(isBinary ? data : `${name}: ${String(data)}`))
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(upstream.port, '127.0.0.1', () => resolve())
    })
    upstream.port = (server.address() as AddressInfo).port
  }

  await listen()
  return upstream
}

function handle(name: string, req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://upstream')
  const send = (status: number, body: string, type = 'text/plain'): void => {
    res.writeHead(status, {'content-type': type, 'content-length': Buffer.byteLength(body), 'x-upstream': name})
    res.end(body)
  }

  switch (url.pathname) {
    case '/': {
      send(200, `This is ${name}.`)
      return
    }

    case '/user': {
      send(200, `It's user ${url.searchParams.get('id')}.`)
      return
    }

    case '/echo': {
      send(200, JSON.stringify({name, method: req.method, url: req.url, headers: req.headers}), 'application/json')
      return
    }

    case '/upload': {
      const hash = createHash('sha256')
      let bytes = 0
      req.on('data', (chunk: Buffer) => {
        bytes += chunk.length
        hash.update(chunk)
      })
      req.on('end', () => send(200, JSON.stringify({bytes, sha256: hash.digest('hex')}), 'application/json'))
      return
    }

    case '/slow': {
      setTimeout(() => send(200, 'slow'), Number(url.searchParams.get('ms') ?? 100))
      return
    }

    default: {
      const status = /^\/status\/(\d{3})$/.exec(url.pathname)
      if (status) send(Number(status[1]), `status ${status[1]}`)
      else send(404, 'no such page')
    }
  }
}
