import {constants, type IncomingHttpHeaders, type ServerHttp2Stream} from 'node:http2'

/** gRPC status codes the gateway itself answers with (grpc/doc/statuscodes.md). */
export const GRPC = {
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const

/** A gRPC call: its content-type is application/grpc (or +proto, +json, ...). */
export function isGrpc(headers: IncomingHttpHeaders): boolean {
  const type = headers['content-type']
  return typeof type === 'string' && type.startsWith('application/grpc')
}

const UNITS: Record<string, number> = {H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000_001}

/** A `grpc-timeout` value (1 to 8 digits and a unit, H M S m u n) in milliseconds, or undefined when malformed. */
export function parseGrpcTimeout(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string') return undefined
  const match = /^(\d{1,8})([HMSmun])$/.exec(value)
  if (match === null) return undefined
  return Number(match[1]) * UNITS[match[2]!]!
}

/** The gRPC status a gateway's HTTP status stands for (the HTTP-to-gRPC mapping of grpc/doc/http-grpc-status-mapping.md). */
export function grpcStatusFor(httpStatus: number): number {
  if (httpStatus === 400 || httpStatus === 414 || httpStatus === 431) return GRPC.INTERNAL
  if (httpStatus === 404) return GRPC.UNIMPLEMENTED
  if (httpStatus === 408 || httpStatus === 504) return GRPC.DEADLINE_EXCEEDED
  if (httpStatus === 429) return GRPC.UNAVAILABLE
  if (httpStatus === 502 || httpStatus === 503) return GRPC.UNAVAILABLE
  return GRPC.UNKNOWN
}

/** A trailers-only gRPC response (HTTP 200, the status in the one HEADERS frame), then the stream ends. */
export function grpcTrailersOnly(stream: ServerHttp2Stream, status: number, message: string): void {
  if (stream.destroyed || stream.closed) return
  if (stream.headersSent) {
    stream.close(constants.NGHTTP2_INTERNAL_ERROR)
    return
  }

  stream.respond(
    {
      ':status': 200,
      'content-type': 'application/grpc',
      'grpc-status': String(status),
      'grpc-message': encodeURIComponent(message),
    },
    {endStream: true},
  )
}
