/** A problem the user can fix; `hint` says how. */
export class UserError extends Error {
  override name = 'UserError'
  readonly exitCode: number
  readonly hint?: string

  constructor(message: string, hint?: string, exitCode = 2) {
    super(message)
    this.hint = hint
    this.exitCode = exitCode
  }
}

/** A result the user asked about does not exist (no instance, unknown id); exit status 1, not a failure of svc. */
export class NotFoundError extends UserError {
  override name = 'NotFoundError'

  constructor(message: string, hint?: string) {
    super(message, hint, 1)
  }
}

/** An invariant svc relies on was broken: a bug in svc, never the user's fault. */
export class BugError extends Error {
  override name = 'BugError'
  readonly exitCode = 70
}

/** A process svc started (a server, a handler) failed. */
export class ExternalError extends Error {
  override name = 'ExternalError'
  readonly exitCode = 1
  readonly hint?: string

  constructor(message: string, hint?: string) {
    super(message)
    this.hint = hint
  }
}

/** The registry refused or failed a request; transient errors are worth retrying, permanent ones are not. */
export class BackendError extends Error {
  override name = 'BackendError'
  readonly backend: string
  readonly exitCode = 1
  readonly hint?: string
  readonly transient: boolean

  constructor(backend: string, message: string, opts: {cause?: unknown; hint?: string; transient: boolean}) {
    super(message, {cause: opts.cause})
    this.backend = backend
    this.transient = opts.transient
    this.hint = opts.hint
  }
}

/** Where a backend address comes from when nothing more precise is known; a command replaces it with the origin. */
export const DEFAULT_BACKEND_ORIGIN = '--backend (or SVC_BACKEND)'

/** No member of the backend answered in time. */
export class BackendUnavailableError extends BackendError {
  override name = 'BackendUnavailableError'

  constructor(backend: string, addresses: string, detail: string, cause?: unknown) {
    super(backend, `cannot reach ${backend} at ${addresses} (${detail})`, {
      cause,
      hint: `check that the servers run and that ${DEFAULT_BACKEND_ORIGIN} names their client addresses`,
      transient: true,
    })
  }
}

/** The error with its hint naming `origin` (where the backend address came from) instead of the generic flag. */
export function withBackendOrigin(error: unknown, origin: string): unknown {
  if (!(error instanceof BackendError) || !error.hint?.includes(DEFAULT_BACKEND_ORIGIN)) return error
  const named = new BackendError(error.backend, error.message, {
    cause: error,
    hint: error.hint.replace(DEFAULT_BACKEND_ORIGIN, origin),
    transient: error.transient,
  })
  named.name = error.name
  return named
}

/** One line for the user: the message, then the fix when there is one. */
export function formatError(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  const hint = 'hint' in error && typeof error.hint === 'string' ? error.hint : undefined
  const message = error.message
    // oclif's parse errors append this to every message; the line must say only the problem and its fix
    .replace(/\s*See more help with --help\s*$/, '')
    .replaceAll(/\s*\n\s*/g, ' ')
    .replace(/^Parsing (--[\w-]+|[A-Z][A-Z0-9_]+) (.*)$/, (_, flag: string, rest: string) =>
      rest.includes(flag) ? rest : `${flag}: ${rest}`,
    )
    .replace(/^The following errors? occurred: /, '')
    .trim()
  return hint ? `${message}: ${hint}` : message
}

export function isTransient(error: unknown): boolean {
  return error instanceof BackendError && error.transient
}

/**
 * Input quoted for a one-line message: shortened, with newlines, control characters and quotes escaped, so that
 * whatever the user typed cannot break the line or flood it.
 */
export function quote(text: string, max = 60): string {
  const short = text.length > max ? text.slice(0, max) + '…' : text
  return JSON.stringify(short)
    .replaceAll('\u2028', String.raw`\u2028`)
    .replaceAll('\u2029', String.raw`\u2029`)
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
