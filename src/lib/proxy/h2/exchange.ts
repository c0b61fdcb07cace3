import type {ServerHttp2Stream} from 'node:http2'

import type {ServiceRoute, Upstream} from '../routes.js'
import type {AccessRecord} from '../access-format.js'

/**
 * What the gateway reports of each HTTP/2 request once it ends (the access log's record): `status` is the HTTP
 * status sent (499 when the client left first), `grpcStatus` the call's outcome for gRPC.
 */
export interface H2Completion {
  protocol: 'h2' | 'h2c'
  remoteAddress: string
  method: string
  target: string
  authority: string | undefined
  status: number
  grpcStatus?: string
  /** Response body bytes sent to the client. */
  bytes: number
  durationMs: number
  service: string | undefined
  /** host:port of the instance that answered (the last one tried), when the request was forwarded. */
  upstream?: string
  /** From sending to the upstream to its response head. */
  upstreamMs?: number
  /** When the request began (epoch ms). */
  time: number
}

/** One HTTP/2 stream being proxied, from routing to its end. */
export interface H2Exchange {
  stream: ServerHttp2Stream
  record: H2Completion
  grpc: boolean
  route: ServiceRoute
  upstream: Upstream
  tried: Set<Upstream>
  retries: number
  hasBody: boolean
  started: number
  sentAt: number
  /** Cancels the upstream side (client gone, deadline). */
  cancel?: () => void
  deadline?: NodeJS.Timeout
  settled: boolean
}

/** The access log's record of one HTTP/2 stream (access-format.ts writes it in the chosen format). */
export function accessRecordOf(record: H2Completion): AccessRecord {
  return {
    remote: record.remoteAddress || '-',
    method: record.method,
    target: record.target,
    protocol: 'HTTP/2.0',
    status: record.status,
    bytes: record.bytes,
    ms: record.durationMs,
    service: record.service ?? '-',
    upstream: record.upstream,
    upstreamMs: record.upstreamMs,
    referer: undefined,
    userAgent: undefined,
  }
}
