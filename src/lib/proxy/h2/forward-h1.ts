import {request} from 'node:http'
import {constants} from 'node:http2'
import type {Socket} from 'node:net'
import {performance} from 'node:perf_hooks'

import {problem} from '../node-http-support.js'
import type {H2Exchange} from './exchange.js'
import {type ForwardFields, h1ResponseHeaders, h1Trailers} from './fields.js'
import type {UpstreamSessions} from './sessions.js'

/** How one attempt ended: `error` when it failed before or during the response, `sentBody` once the body went out. */
export interface AttemptOutcome {
  status: number
  failed: boolean
  error?: Error
  sentBody: boolean
}

export interface AttemptOptions {
  path: string
  timeoutMs: number
  connectTimeoutMs: number
}

/** Sends an HTTP/2 request to an HTTP/1.1 upstream and streams the answer back as HTTP/2 (trailers included). */
export function forwardH1(
  ex: H2Exchange,
  upstreams: UpstreamSessions,
  fields: ForwardFields,
  opts: AttemptOptions,
  done: (outcome: AttemptOutcome) => void,
): void {
  const {stream, upstream} = ex
  const {address, port} = upstream.instance
  const up = request({
    host: address,
    port,
    method: ex.record.method,
    path: opts.path,
    headers: fields.h1,
    agent: upstreams.agent(ex.route.name, upstream),
    setHost: false,
  })
  let sentBody = false
  let finished = false
  const finish = (outcome: Omit<AttemptOutcome, 'sentBody'>): void => {
    if (finished) return
    finished = true
    done({...outcome, sentBody})
  }

  ex.cancel = () => up.destroy()
  up.on('socket', (socket: Socket) => {
    const connected = (): void => {
      clearTimeout(timer)
      // the body goes only once connected, so a connect failure can be retried elsewhere
      if (ex.hasBody && !sentBody && !ex.settled) {
        sentBody = true
        stream.pipe(up)
      }
    }

    const timer = setTimeout(
      () => up.destroy(problem(`connect timed out after ${opts.connectTimeoutMs} ms`, 'ECONNECTTIMEOUT')),
      opts.connectTimeoutMs,
    )
    if (socket.connecting) socket.once('connect', connected)
    else connected()
    socket.once('close', () => clearTimeout(timer))
  })
  up.setTimeout(opts.timeoutMs, () => up.destroy(problem(`no response for ${opts.timeoutMs} ms`, 'ERESPONSETIMEOUT')))
  up.on('response', (ures) => {
    ex.record.upstreamMs = performance.now() - ex.sentAt
    const status = ures.statusCode ?? 502
    if (ex.settled || stream.destroyed) {
      ures.resume()
      return
    }

    ex.record.status = status
    const empty = ex.record.method === 'HEAD' || status === 204 || status === 304
    stream.respond(h1ResponseHeaders(status, ures.rawHeaders), {waitForTrailers: !empty, endStream: empty})
    stream.once('wantTrailers', () => {
      const trailers = ures.rawTrailers.length > 0 ? h1Trailers(ures.rawTrailers) : {}
      if (!stream.destroyed) stream.sendTrailers(trailers)
    })
    if (empty) {
      ures.resume()
    } else {
      ures.pipe(stream)
      ures.on('data', (chunk: Buffer) => {
        ex.record.bytes += chunk.length
      })
    }

    ures.once('end', () => finish({status, failed: status >= 500}))
    ures.once('close', () => {
      if (ures.complete) return
      // the upstream went away in the middle of its body: the client's stream is reset too
      if (!stream.destroyed) stream.close(constants.NGHTTP2_INTERNAL_ERROR)
      finish({status, failed: true})
    })
  })
  up.on('error', (error: Error) => finish({status: 502, failed: true, error}))
  if (!ex.hasBody) up.end()
}
