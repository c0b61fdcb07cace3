import zookeeper from 'node-zookeeper-client'

import {BackendError, BackendUnavailableError, errorMessage, UserError} from '../../errors.js'
import type {Credentials} from '../spec.js'

export const BACKEND = 'zookeeper'

const {Exception} = zookeeper

/** What svc says about one of the library's error codes: whether retrying can help, and how to fix the rest. */
interface CodeRule {
  transient: boolean
  /** Replaces the library's bare code name in the message, and names the fix. */
  explain?: (auth: Credentials | undefined) => {why: string; hint: string}
}

const noAuth = (auth: Credentials | undefined): {why: string; hint: string} => ({
  why: `the znode's ACL denies ${auth ? `user "${auth.user}"` : 'an unauthenticated client'}`,
  hint: auth
    ? 'check the password of --zk-auth (or zk://user:password@hosts), or use a base path this user may write'
    : 'pass the credentials that own these znodes: --zk-auth user:password (or zk://user:password@hosts)',
})

const authFailedRule = (): {why: string; hint: string} => ({
  why: 'ZooKeeper refused the credentials',
  hint: 'check the user and password of --zk-auth (SVC_ZK_AUTH) or of zk://user:password@hosts',
})

/** The one table from ZooKeeper's error codes to svc's errors; codes not listed are permanent. */
const RULES: ReadonlyMap<number, CodeRule> = new Map<number, CodeRule>([
  [Exception.AUTH_FAILED, {transient: false, explain: authFailedRule}],
  [Exception.CONNECTION_LOSS, {transient: true}],
  [
    Exception.INVALID_ACL,
    {
      transient: false,
      explain: () => ({
        why: 'ZooKeeper refused the ACL',
        hint: 'check --zk-acl (SVC_ZK_ACL); auth:: entries need --zk-auth',
      }),
    },
  ],
  [Exception.NO_AUTH, {transient: false, explain: noAuth}],
  [
    Exception.NO_CHILDREN_FOR_EPHEMERALS,
    {
      transient: false,
      explain: () => ({
        why: 'a znode on the base path is ephemeral and cannot hold services',
        hint: 'choose another base path in zk://hosts/base',
      }),
    },
  ],
  [Exception.OPERATION_TIMEOUT, {transient: true}],
  [Exception.SESSION_EXPIRED, {transient: true}],
])

export function codeOf(error: unknown): number | undefined {
  return error instanceof Exception ? error.getCode() : undefined
}

/** The one place where the library's errors become svc's. */
export function toBackendError(error: unknown, what: string, auth?: Credentials): Error {
  if (error instanceof BackendError || error instanceof UserError) return error
  if (error instanceof Exception) {
    const rule = RULES.get(error.getCode())
    const explained = rule?.explain?.(auth)
    const why = explained ? `${explained.why} (${error.getName()})` : error.getName()
    return new BackendError(BACKEND, `${what} failed: ${why}`, {
      cause: error,
      transient: rule?.transient ?? false,
      hint: explained?.hint,
    })
  }

  // the library validates paths and sizes by throwing plain errors: retrying cannot help
  return new BackendError(BACKEND, `${what} failed: ${errorMessage(error)}`, {cause: error, transient: false})
}

/** The session's credentials were refused while connecting (the library reports it as a state, not an error). */
export function authFailed(what: string, cause: unknown): BackendError {
  const {why, hint} = authFailedRule()
  return new BackendError(BACKEND, `${what} failed: ${why} (AUTH_FAILED)`, {cause, transient: false, hint})
}

export function zkError(message: string, transient: boolean): BackendError {
  return new BackendError(BACKEND, message, {transient})
}

export function closedError(): BackendError {
  return zkError('the registry is closed', false)
}

export function expiredError(idHex: string): BackendError {
  return zkError(`session 0x${idHex} expired`, true)
}

/** No member answered within the connect timeout: that wait is spent, so the request is not tried again. */
class SilentEnsembleError extends BackendUnavailableError {
  override readonly transient = false
}

/** The ensemble cannot be reached; `silent` when the whole connect timeout passed without an answer. */
export function unavailable(
  hosts: string,
  detail: string,
  opts: {cause?: unknown; silent?: boolean} = {},
): BackendError {
  return opts.silent
    ? new SilentEnsembleError(BACKEND, hosts, detail, opts.cause)
    : new BackendUnavailableError(BACKEND, hosts, detail, opts.cause)
}
