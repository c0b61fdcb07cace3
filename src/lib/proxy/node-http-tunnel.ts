import {request as httpRequest, type IncomingMessage} from 'node:http'
import type {Socket} from 'node:net'
import type {Duplex} from 'node:stream'

import {downstreamHeaders} from './headers.js'
import type {ProxyMetrics} from './metrics.js'
import {type AgentPool, connectDeadline, failureAnswer, problem, rawReply} from './node-http-support.js'
import type {ServiceRoute, Upstream} from './routes.js'
import {errorKind} from './server.js'
import {splice} from './tunnel.js'

/** What the node:http engine gives one upgrade: where to ask, and how it learns the exchange ended. */
export interface TunnelAsk {
  path: string
  headers: string[]
  connectTimeoutMs: number
  timeoutMs: number
  metrics: ProxyMetrics
  /** The engine's open tunnels: the drain waits for them. */
  tunnels: Set<Duplex>
  /** Called once, with the status the exchange ended on (101, the upstream's, 502/504, or 499 for a closed client). */
  end: (status: number) => void
}

/**
 * Asks the upstream to switch protocols and splices the two sockets only once it answers 101; any other answer
 * is relayed (delimited by closing) and both connections close, so nothing the client sends later goes unrouted.
 */
export function tunnelUpgrade(
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
  route: ServiceRoute<AgentPool>,
  upstream: Upstream<AgentPool>,
  ask: TunnelAsk,
): void {
  const {address, port} = upstream.instance
  const up = httpRequest({
    host: address,
    port,
    method: req.method,
    path: ask.path,
    headers: ask.headers,
    agent: false,
    setHost: false,
  })
  ask.tunnels.add(socket)
  upstream.inflight++
  const end = (status: number): void => {
    if (!ask.tunnels.delete(socket)) return
    upstream.inflight--
    ask.end(status)
  }

  connectDeadline(up, ask.connectTimeoutMs)
  up.setTimeout(ask.timeoutMs, () => up.destroy(problem(`no response for ${ask.timeoutMs} ms`, 'ERESPONSETIMEOUT')))
  up.on('upgrade', (ures: IncomingMessage, upSocket: Socket, upHead: Buffer) => {
    up.setTimeout(0)
    route.outcome(upstream, false)
    const upgrade = ures.headers.upgrade ?? ''
    socket.write(
      `HTTP/1.1 101 ${ures.statusMessage ?? 'Switching Protocols'}\r\n${downstreamHeaders(ures.rawHeaders).block}connection: upgrade\r\nupgrade: ${upgrade}\r\n\r\n`,
      'latin1',
    )
    splice(socket, upSocket, head, upHead, ask.timeoutMs, () => end(101))
  })
  up.on('response', (ures: IncomingMessage) => {
    route.outcome(upstream, false)
    const status = ures.statusCode ?? 502
    const fields = downstreamHeaders(ures.rawHeaders).block.replaceAll(
      /^(content-length|transfer-encoding):.*\r\n/gim,
      '',
    )
    socket.write(`HTTP/1.1 ${status} ${ures.statusMessage ?? ''}\r\n${fields}connection: close\r\n\r\n`, 'latin1')
    ures.pipe(socket)
    ures.on('end', () => end(status))
    ures.on('error', () => socket.destroy())
  })
  up.on('error', (error) => {
    ask.metrics.upstreamErrors.inc({service: route.name, instance: upstream.id, kind: errorKind(error)})
    route.outcome(upstream, true)
    // as the llhttp engine: 504 when the upstream did not connect or answer in time, else 502
    const answer = failureAnswer(error)
    if (!socket.destroyed)
      rawReply(socket, answer.status, {error: answer.error, service: route.name, instance: upstream.id})
    end(answer.status)
  })
  socket.on('close', () => {
    up.destroy()
    end(499)
  })
  up.end()
}
