import {BackendError} from '../../errors.js'
import {deniedMessage, redactSecrets, requiredPermission, tlsProblem} from './security.js'

/** Why an agent did not answer: refused and not-found are final for that address, the others may pass. */
export type Unreachable = 'not-found' | 'refused' | 'reset' | 'timeout'

/** A failed Consul request, converted once, at the boundary. */
export class ConsulError extends BackendError {
  readonly status?: number
  /** The agent did not answer, and why: the caller fails over to the next agent. */
  readonly unreachable?: Unreachable

  constructor(
    message: string,
    opts: {cause?: unknown; hint?: string; status?: number; transient: boolean; unreachable?: Unreachable},
  ) {
    super('consul', message, opts)
    this.status = opts.status
    this.unreachable = opts.unreachable
  }

  /** The request ran out of time (the agent may still be alive, e.g. waiting for a leader). */
  get timedOut(): boolean {
    return this.unreachable === 'timeout'
  }
}

export const NO_LEADER_HINT = 'wait for the servers to elect one; check that a majority of the Consul servers run'

/** What the boundary needs to know to explain an error without leaking the token. */
export interface ErrorContext {
  agent: string
  token?: string
  /** The service the failed request was about, when its path names only an instance id. */
  service?: string
}

/** papi's errors (what the consul package throws), plus Node's system errors. */
interface DriverError extends Error {
  code?: string
  isResponse?: boolean
  isTimeout?: boolean
  response?: {body?: unknown; statusCode?: number; req?: {method?: string; path?: string}}
}

/** An HTTP answer Consul gave, as the table rows read it. */
interface Answered {
  status: number
  text: string
  method: string
  path: string
}

type Make = (failure: Answered, ctx: ErrorContext, cause: Error) => ConsulError

/** Consul's answers, first match wins (the way etcd3's castGrpcError maps messages through a table). */
const ANSWER_TABLE: ReadonlyArray<[(a: Answered) => boolean, Make]> = [
  [
    (a) => a.status === 403,
    (a, ctx, cause) => {
      const permission = requiredPermission(a.method, a.path, ctx.service)
      const {message, hint} = deniedMessage(a.text, permission, ctx.token !== undefined)
      return new ConsulError(`${message} (agent ${ctx.agent})`, {cause, hint, status: 403, transient: false})
    },
  ],
  [
    (a) => a.status === 400 && /HTTP request to an HTTPS server/i.test(a.text),
    (_, ctx, cause) =>
      new ConsulError(`consul agent ${ctx.agent} speaks HTTPS on that port`, {
        cause,
        hint: 'use consul+https:// (or CONSUL_HTTP_SSL=true) with --cacert or CONSUL_CACERT',
        status: 400,
        transient: false,
      }),
  ],
  [
    (a) => a.status === 400,
    (a, _, cause) =>
      new ConsulError(`consul rejected the request: ${a.text}`, {
        cause,
        hint: 'correct the value Consul names',
        status: 400,
        transient: false,
      }),
  ],
  [
    (a) => a.status >= 500 && /no cluster leader|no leader/i.test(a.text),
    (a, ctx, cause) =>
      new ConsulError(`consul has no cluster leader (agent ${ctx.agent})`, {
        cause,
        hint: NO_LEADER_HINT,
        status: a.status,
        transient: true,
      }),
  ],
  [
    () => true,
    (a, ctx, cause) =>
      new ConsulError(`consul agent ${ctx.agent} answered ${a.status}: ${a.text}`, {
        cause,
        status: a.status,
        transient: a.status >= 500 || a.status === 429,
      }),
  ],
]

/** System error codes of an agent that did not answer, and how svc says it. */
const UNREACHABLE_TABLE: ReadonlyMap<string, [Unreachable, string]> = new Map([
  ['EAI_AGAIN', ['not-found', 'host not found (DNS did not answer)']],
  ['ECONNABORTED', ['reset', 'connection aborted']],
  ['ECONNREFUSED', ['refused', 'connection refused']],
  ['ECONNRESET', ['reset', 'connection reset']],
  ['EHOSTDOWN', ['reset', 'host down']],
  ['EHOSTUNREACH', ['reset', 'host unreachable']],
  ['ENETUNREACH', ['reset', 'network unreachable']],
  ['ENOTFOUND', ['not-found', 'host not found']],
  ['EPIPE', ['reset', 'connection closed']],
  ['ETIMEDOUT', ['timeout', 'timed out']],
])

/** The one place where driver errors become svc's errors; nothing of the token leaves through them. */
export function toConsulError(error: unknown, context: ErrorContext | string): ConsulError {
  const ctx = typeof context === 'string' ? {agent: context} : context
  const clean = (text: string): string => redactSecrets(text, [ctx.token])
  if (error instanceof ConsulError) return error
  if (error instanceof BackendError) {
    return new ConsulError(clean(error.message), {cause: error, hint: error.hint, transient: error.transient})
  }

  const e = (error instanceof Error ? error : new Error(String(error))) as DriverError
  return e.isResponse ? fromAnswer(e, ctx, clean) : fromTransport(e, ctx, clean)
}

/** An HTTP answer other than 2xx, through ANSWER_TABLE. */
function fromAnswer(e: DriverError, ctx: ErrorContext, clean: (text: string) => string): ConsulError {
  const req = e.response?.req
  const answered: Answered = {
    status: e.response?.statusCode ?? 0,
    text: clean(responseText(e)),
    method: req?.method ?? 'GET',
    path: req?.path ?? '',
  }
  const row = ANSWER_TABLE.find(([when]) => when(answered))
  return row![1](answered, ctx, e)
}

/** No answer: a timeout, TLS, or a system error code through UNREACHABLE_TABLE. */
function fromTransport(e: DriverError, ctx: ErrorContext, clean: (text: string) => string): ConsulError {
  if (e.isTimeout) {
    return new ConsulError(`consul agent ${ctx.agent} did not answer in time`, {
      cause: e,
      transient: true,
      unreachable: 'timeout',
    })
  }

  const code =
    e.code ?? (e.cause && typeof e.cause === 'object' && 'code' in e.cause ? String(e.cause.code) : undefined)
  const tls = tlsProblem(code, e.message)
  if (tls) {
    return new ConsulError(`TLS with consul agent ${ctx.agent} failed: ${tls.detail}`, {
      cause: e,
      hint: tls.hint,
      transient: false,
    })
  }

  const unreachable = code === undefined ? undefined : UNREACHABLE_TABLE.get(code)
  if (unreachable || /socket hang up/i.test(e.message)) {
    const [reason, said] = unreachable ?? ['reset', 'connection closed']
    return new ConsulError(`consul agent ${ctx.agent} is unreachable (${said})`, {
      cause: e,
      transient: true,
      unreachable: reason,
    })
  }

  return new ConsulError(`consul request to ${ctx.agent} failed: ${clean(stripDriverPrefix(e.message))}`, {
    cause: e,
    transient: false,
  })
}

/** The agent does not know the check or service: it restarted without its state, or someone deregistered it. */
export function forgotten(error: ConsulError): boolean {
  return (
    error.status === 404 ||
    (error.status === 500 &&
      /does not have associated TTL|unknown check|unknown service|not found/i.test(error.message))
  )
}

function responseText(error: DriverError): string {
  const body = error.response?.body
  const text =
    typeof body === 'string' ? body : Buffer.isBuffer(body) ? body.toString('utf8') : stripDriverPrefix(error.message)
  return text.trim().replaceAll(/\s+/g, ' ').slice(0, 500) || `status ${error.response?.statusCode ?? '?'}`
}

/** papi prefixes messages with "consul: <request name>: ". */
function stripDriverPrefix(message: string): string {
  return message.replace(/^consul: [\w.]+: /, '')
}
