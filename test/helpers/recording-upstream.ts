import {type AddressInfo, createServer, type Server, type Socket} from 'node:net'

import {
  createParser,
  kOnBody,
  kOnHeaders,
  kOnHeadersComplete,
  kOnMessageComplete,
  methods,
  type NativeParser,
} from '../../src/lib/proxy/http-parser.js'

/** One request as the upstream parsed it (strictly, with Node's own parser). */
export interface RecordedRequest {
  method: string
  url: string
  /** Raw [name, value, ...] fields. */
  headers: string[]
  body: string
}

/**
 * A raw HTTP/1.1 upstream for edge tests: it keeps every byte it receives, parses requests strictly, and answers by
 * path. `/desync` sends a second, unasked-for response after its own; `/barelf` ends lines with a bare LF;
 * `/gzipchunked` answers with `Transfer-Encoding: gzip, chunked`; `/connlen` lists Content-Length in its
 * Connection header; `/hang` never answers; `/slow` answers after 300 ms; `/ws` answers an Upgrade with 101 and then
 * echoes bytes; `/noup` answers an Upgrade with a plain 200 and keeps reading HTTP. Anything else echoes the request
 * as JSON.
 */
export interface RecordingUpstream {
  port: number
  /** Every byte received since the last `reset`, in arrival order (all connections). */
  bytes(): string
  /** Requests parsed since the last `reset`. */
  requests(): RecordedRequest[]
  reset(): void
  close(): Promise<void>
}

function reply(socket: Socket, req: RecordedRequest, upgrade: boolean): 'tunnel' | 'close' | undefined {
  const path = req.url.split('?')[0]
  switch (path) {
    case '/desync': {
      socket.write(
        'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok' +
          'HTTP/1.1 200 OK\r\nX-Smuggled: yes\r\nContent-Length: 7\r\n\r\nPOISON!',
      )
      return undefined
    }

    case '/barelf': {
      socket.write('HTTP/1.1 200 OK\nContent-Type: text/plain\nContent-Length: 2\n\nok')
      return undefined
    }

    case '/gzipchunked': {
      socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n')
      return undefined
    }

    case '/connlen': {
      socket.write('HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 2\r\n\r\nok')
      return undefined
    }

    case '/hang': {
      return undefined
    }

    case '/slow': {
      setTimeout(() => socket.writable && socket.write(json(req)), 300)
      return undefined
    }

    case '/ws': {
      if (!upgrade) break
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n')
      return 'tunnel'
    }
  }

  socket.write(json(req))
  return undefined
}

function json(req: RecordedRequest): string {
  const body = JSON.stringify(req)
  return `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
}

interface UpstreamParser extends NativeParser {
  current?: RecordedRequest
  upgrade?: boolean
}

export async function startRecordingUpstream(): Promise<RecordingUpstream> {
  let received: Buffer[] = []
  let parsed: RecordedRequest[] = []
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    const parser = createParser('request') as UpstreamParser
    let tunnel = false
    parser[kOnHeaders] = () => {}
    parser[kOnHeadersComplete] = (_ma, _mi, headers, method, url, _s, _r, upgrade) => {
      parser.current = {method: methods[method ?? 0] ?? '?', url: url ?? '', headers: headers ?? [], body: ''}
      parser.upgrade = upgrade
      return 0
    }

    parser[kOnBody] = (chunk) => {
      if (parser.current) parser.current.body += chunk.toString('latin1')
    }

    parser[kOnMessageComplete] = () => {
      const req = parser.current
      if (req === undefined) return
      parsed.push(req)
      if (reply(socket, req, parser.upgrade === true) === 'tunnel') tunnel = true
    }

    socket.on('data', (chunk: Buffer) => {
      received.push(chunk)
      if (tunnel) {
        socket.write('echo:' + chunk.toString('latin1'))
        return
      }

      const ret = parser.execute(chunk)
      if (tunnel) {
        const rest = typeof ret === 'number' ? chunk.subarray(ret) : Buffer.alloc(0)
        if (rest.length > 0) socket.write('echo:' + rest.toString('latin1'))
      } else if (typeof ret !== 'number') {
        socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
      }
    })
  })
  await new Promise<void>((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve())
  })
  return {
    port: (server.address() as AddressInfo).port,
    bytes: () => Buffer.concat(received).toString('latin1'),
    requests: () => parsed,
    reset() {
      received = []
      parsed = []
    },
    async close() {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
      })
    },
  }
}
