import {
  ClientClosedError,
  EtcdAuthenticationFailedError,
  EtcdInvalidAuthTokenError,
  EtcdLeaseInvalidError,
  EtcdPermissionDeniedError,
  GRPCDeadlineExceededError,
  GRPCInvalidArgumentError,
  GRPCUnauthenticatedError,
  GRPCUnavailableError,
  isRecoverableError,
} from 'etcd3'

import {BackendError, BackendUnavailableError, BugError, errorMessage, UserError} from '../../errors.js'

/** Thrown by a member's policy while another member serves the calls; never reaches callers. */
export class MemberSkippedError extends Error {
  override name = 'MemberSkippedError'
}

/** What a message needs to name: the addresses, the prefix, the user. */
export interface ErrorContext {
  addresses: string
  prefix: string
  user?: string
}

type Convert = (error: Error, detail: string, context: ErrorContext) => Error
type ErrorClass = abstract new (...args: never[]) => Error

const unavailable: Convert = (error, detail, {addresses}) =>
  new BackendUnavailableError('etcd', addresses, detail, error)

const badPassword: Convert = (error, _detail, {user}) =>
  new BackendError('etcd', `etcd refused the user name or password of user "${user ?? ''}"`, {
    cause: error,
    hint: 'check user:password in the URI (etcd://user:password@host) or in ETCDCTL_USER',
    transient: false,
  })

const denied: Convert = (error, detail, {prefix, user}) =>
  new BackendError(
    'etcd',
    `etcd denied ${user === undefined ? 'a client without a user' : `user "${user}"`} permission on ${prefix}/ (${detail})`,
    {
      cause: error,
      hint:
        user === undefined
          ? 'etcd has authentication on: pass user:password in the URI (etcd://user:password@host) or in ETCDCTL_USER'
          : `grant its role readwrite on the prefix: etcdctl role grant-permission ROLE --prefix readwrite ${prefix}/`,
      transient: false,
    },
  )

const needsUser: Convert = (error, detail) =>
  new BackendError('etcd', `etcd requires a user (${detail})`, {
    cause: error,
    hint: 'pass user:password in the URI (etcd://user:password@host) or in ETCDCTL_USER',
    transient: false,
  })

const rejected: Convert = (error, detail) =>
  new BackendError('etcd', `etcd rejected the request: ${detail}`, {cause: error, transient: false})

const closed: Convert = (error) =>
  new BackendError('etcd', 'the etcd client is closed', {cause: error, transient: false})

const leaseLost: Convert = (error, detail) =>
  new BackendError('etcd', `etcd lease lost: ${detail}`, {cause: error, transient: true})

/** etcd3's typed errors (its castGrpcError has already mapped gRPC codes and etcd messages to them), in order. */
const BY_CLASS: ReadonlyArray<readonly [ErrorClass, Convert]> = [
  [MemberSkippedError, unavailable],
  [GRPCUnavailableError, unavailable],
  [GRPCDeadlineExceededError, unavailable],
  [EtcdAuthenticationFailedError, badPassword],
  [EtcdPermissionDeniedError, denied],
  [EtcdInvalidAuthTokenError, denied],
  [GRPCUnauthenticatedError, needsUser],
  [GRPCInvalidArgumentError, rejected],
  [ClientClosedError, closed],
  [EtcdLeaseInvalidError, leaseLost],
]

/** etcd answers some refusals with messages etcd3 has no class for. */
const BY_MESSAGE: ReadonlyArray<readonly [RegExp, Convert]> = [[/user name is empty/, needsUser]]

/** Why a connection failed, in words (gRPC only passes on the system error code). */
const CONNECT_FAILURES: ReadonlyArray<readonly [RegExp, (target: string) => string]> = [
  [/ECONNREFUSED/, (target) => `connection refused by ${target}`],
  [
    /ENOTFOUND|EAI_AGAIN|EAI_NONAME|Name resolution failed/,
    (target) => `host ${target.replace(/:\d+$/, '')} not found`,
  ],
  [/EHOSTUNREACH|ENETUNREACH/, (target) => `no route to ${target}`],
]

/** The one place where etcd3 and gRPC errors become svc's errors. */
export function toBackendError(error: unknown, context: ErrorContext): Error {
  if (error instanceof BackendError || error instanceof UserError || error instanceof BugError) return error
  const detail = cleanMessage(error)
  if (!(error instanceof Error)) return new BackendError('etcd', `etcd request failed: ${detail}`, {transient: false})
  const byClass = BY_CLASS.find(([type]) => error instanceof type)
  if (byClass) return byClass[1](error, detail, context)
  const byMessage = BY_MESSAGE.find(([pattern]) => pattern.test(detail))
  if (byMessage) return byMessage[1](error, detail, context)
  return new BackendError('etcd', `etcd request failed: ${detail}`, {
    cause: error,
    transient: isRecoverableError(error),
  })
}

/** A system error of a connection attempt (ECONNREFUSED, ENOTFOUND) in words; undefined for any other error. */
export function connectFailure(message: string, target: string): string | undefined {
  const found = CONNECT_FAILURES.find(([pattern]) => pattern.test(message))
  return found?.[1](target)
}

/** gRPC messages without the status prefix and etcd3's class-name prefix, connect errors in words. */
export function cleanMessage(error: unknown): string {
  const message = errorMessage(error)
  // gRPC: "14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:2379. …"
  const connect = /Last error: (?:Error: )?(.+?)\.?(?: Resolution note:.*)?$/.exec(message)
  if (connect) {
    const last = connect[1]
    if (!last || last === 'null') return 'no connection established'
    const target = /(?:ECONNREFUSED|EHOSTUNREACH|ENETUNREACH) (\S+?)\.?$/.exec(last)?.[1]
    return (target && connectFailure(last, target)) ?? last
  }

  const resolution = /Name resolution failed for target dns:(\S+)/.exec(message)
  if (resolution?.[1]) return connectFailure(message, resolution[1]) ?? message
  return message
    .replace(/^\w+Error: /, '')
    .replace(/^\d+ [A-Z_]+: /, '')
    .replace(/ \(\d{4}-\d\d-\d\dT[\d:.]+Z\)$/, '')
    .trim()
}
