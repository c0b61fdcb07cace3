import {type ClientHttp2Session, type ClientHttp2Stream, constants, type IncomingHttpHeaders} from 'node:http2'
import {performance} from 'node:perf_hooks'

import {problem} from '../node-http-support.js'
import type {H2Exchange} from './exchange.js'
import {type ForwardFields, h2Forwarded} from './fields.js'
import type {AttemptOptions, AttemptOutcome} from './forward-h1.js'
import type {UpstreamSessions} from './sessions.js'

/**
 * Sends an HTTP/2 request to an h2c upstream (gRPC among them) on its pooled session: headers, body and trailers
 * stream both ways, a trailers-only answer stays trailers-only, and an upstream reset is passed on with its code.
 */
export function forwardH2(
  ex: H2Exchange,
  upstreams: UpstreamSessions,
  fields: ForwardFields,
  opts: AttemptOptions,
  done: (outcome: AttemptOutcome) => void,
): void {
  let finished = false
  let sentBody = false
  const finish = (outcome: Omit<AttemptOutcome, 'sentBody'>): void => {
    if (finished) return
    finished = true
    done({...outcome, sentBody})
  }

  upstreams.session(ex.route.name, ex.upstream).then(
    (session) => {
      if (ex.settled || ex.stream.destroyed) {
        finish({status: 499, failed: false})
        return
      }

      sentBody = ex.hasBody
      exchange(ex, session, {...fields.h2, ':path': opts.path}, opts, finish)
    },
    (error: Error) => finish({status: 502, failed: true, error}),
  )
}

function exchange(
  ex: H2Exchange,
  session: ClientHttp2Session,
  headers: ForwardFields['h2'],
  opts: AttemptOptions,
  finish: (outcome: Omit<AttemptOutcome, 'sentBody'>) => void,
): void {
  const {stream} = ex
  let up: ClientHttp2Stream
  try {
    up = session.request(headers, {endStream: !ex.hasBody})
  } catch (error) {
    finish({status: 502, failed: true, error: problem((error as Error).message, 'EUPSTREAMCLOSED')})
    return
  }

  let status = 0
  let trailers: IncomingHttpHeaders | undefined
  let cancelled = false
  ex.cancel = () => {
    cancelled = true
    if (!up.destroyed) up.close(constants.NGHTTP2_CANCEL)
  }

  // a gRPC stream may stay quiet for as long as the call lasts; its deadline is grpc-timeout's business
  if (!ex.grpc) {
    up.setTimeout(opts.timeoutMs, () => {
      up.close(constants.NGHTTP2_CANCEL)
      finish({status: 504, failed: true, error: problem(`no response for ${opts.timeoutMs} ms`, 'ERESPONSETIMEOUT')})
    })
  }

  up.on('error', () => {})
  up.on('response', (head, flags) => {
    ex.record.upstreamMs = performance.now() - ex.sentAt
    status = Number(head[':status'] ?? 502)
    if (ex.settled || stream.destroyed) return
    ex.record.status = status
    const grpcStatus = head['grpc-status']
    if (typeof grpcStatus === 'string') ex.record.grpcStatus = grpcStatus
    // eslint-disable-next-line no-bitwise
    const endStream = (flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0
    stream.respond(h2Forwarded(head), endStream ? {endStream: true} : {waitForTrailers: true})
    if (endStream) return
    stream.once('wantTrailers', () => {
      if (!stream.destroyed) stream.sendTrailers(trailers === undefined ? {} : h2Forwarded(trailers))
    })
    up.pipe(stream)
    up.on('data', (chunk: Buffer) => {
      ex.record.bytes += chunk.length
    })
  })
  up.on('trailers', (received: IncomingHttpHeaders) => {
    trailers = received
    const grpcStatus = received['grpc-status']
    if (typeof grpcStatus === 'string') ex.record.grpcStatus = grpcStatus
  })
  up.once('close', () => {
    const code = up.rstCode ?? constants.NGHTTP2_NO_ERROR
    if (code === constants.NGHTTP2_NO_ERROR || cancelled) {
      finish({status: status || 502, failed: status >= 500})
      return
    }

    if (status === 0) {
      finish({status: 502, failed: true, error: problem(`upstream reset the stream (code ${code})`, 'EUPSTREAMCLOSED')})
      return
    }

    // reset after its head: the client's stream is reset with the same code, so gRPC reports what happened
    if (!stream.destroyed) stream.close(code)
    finish({status, failed: true})
  })
  if (ex.hasBody) stream.pipe(up)
}
