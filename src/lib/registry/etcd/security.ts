import type {IOptions} from 'etcd3'
import {readFileSync} from 'node:fs'
import {connect as tlsConnect} from 'node:tls'

import {BackendError, errorMessage, UserError} from '../../errors.js'
import type {Credentials, TlsFiles} from '../spec.js'

/** The PEM contents of the TLS files. */
export interface Pem {
  ca?: Buffer
  cert?: Buffer
  key?: Buffer
}

export type SecurityOptions = Pick<IOptions, 'auth' | 'credentials'>

const PROBE_TIMEOUT_MS = 2000

/** Reads the TLS files; a file that cannot be read is the user's to fix, named with its flag. */
export function readPem(tls: TlsFiles): Pem {
  return {ca: readFile(tls.ca, '--cacert'), cert: readFile(tls.cert, '--cert'), key: readFile(tls.key, '--key')}
}

function readFile(file: string | undefined, flag: string): Buffer | undefined {
  if (file === undefined) return undefined
  try {
    return readFileSync(file)
  } catch (error) {
    throw new UserError(
      `cannot read ${flag} ${file} (${(error as NodeJS.ErrnoException).code ?? errorMessage(error)})`,
      `give ${flag} a readable PEM file`,
    )
  }
}

/** Password auth and TLS credentials for etcd3. */
export function securityOptions(auth: Credentials | undefined, pem: Pem | undefined): SecurityOptions {
  const options: SecurityOptions = {}
  if (auth) options.auth = {username: auth.user, password: auth.password}
  if (!pem) return options
  // without --cacert, the system's CAs; grpc-js takes null for them though etcd3's type says Buffer
  const rootCertificate = (pem.ca ?? null) as Buffer
  options.credentials = {rootCertificate, privateKey: pem.key, certChain: pem.cert}
  return options
}

/** grpc-js checks the PEM files when it builds its credentials: that failure is the user's to fix. */
export function unusableTlsFiles(error: unknown): UserError {
  return new UserError(
    `cannot use the TLS files (${errorMessage(error)})`,
    'give --cacert, --cert and --key PEM files, --key the key of --cert',
  )
}

/** A TLS problem with the first member that shows one, as the error to report; undefined when there is none. */
export async function diagnoseTls(
  urls: readonly string[],
  addresses: string,
  tls: TlsFiles | undefined,
  pem: Pem | undefined,
  failure: Error,
  timeoutMs: number,
): Promise<BackendError | undefined> {
  const verdicts = await Promise.all(urls.map((url) => probeTls(new URL(url), tls, pem, timeoutMs)))
  const problem = verdicts.find((v) => v !== undefined)
  if (!problem) return undefined
  return new BackendError('etcd', `TLS with etcd at ${addresses} failed: ${problem.cause}`, {
    cause: failure,
    hint: problem.hint,
    transient: false,
  })
}

let ipServerNameMuted = false

/**
 * grpc-js sends a member's address as the TLS server name, and Node warns on stderr (DEP0123) when that is an IP
 * address; the user wrote that address and cannot change what grpc-js sends, so only that one warning is dropped.
 */
export function muteIpServerNameWarning(): void {
  if (ipServerNameMuted) return
  ipServerNameMuted = true
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void
  process.emitWarning = ((...args: unknown[]) => {
    const [, type, code] = args
    const named = typeof type === 'object' && type !== null ? (type as {code?: unknown}).code : code
    if (named !== 'DEP0123') emit(...args)
  }) as typeof process.emitWarning
}

type Verdict = {cause: string; hint: string} | undefined

/**
 * Opens a TLS connection as gRPC would, to learn why gRPC could not: a refused or missing client certificate, an
 * untrusted server certificate, or a server that does (or does not) speak TLS. Undefined when nothing is wrong with
 * TLS (or the member does not answer at all).
 */
export function probeTls(
  url: URL,
  tls: TlsFiles | undefined,
  pem: Pem = {},
  timeoutMs = PROBE_TIMEOUT_MS,
): Promise<Verdict> {
  const host = url.hostname.replaceAll(/^\[|\]$/g, '')
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined
    // an IP address is no server name (RFC 6066): node sends none for it
    const socket = tlsConnect({
      host,
      port: Number(url.port),
      ca: pem.ca,
      cert: pem.cert,
      key: pem.key,
      ALPNProtocols: ['h2'],
    })
    const finish = (verdict: Verdict): void => {
      clearTimeout(timer)
      socket.destroy()
      resolve(verdict)
    }

    timer = setTimeout(() => finish(undefined), timeoutMs)
    socket.on('secureConnect', () => {
      if (!tls) {
        finish({cause: 'the server speaks TLS', hint: 'use etcds://host:2379 (with --cacert for a private CA)'})
        return
      }

      // TLS 1.3 servers refuse a missing client certificate only after the handshake, with an alert
      clearTimeout(timer)
      timer = setTimeout(() => finish(undefined), Math.min(500, timeoutMs))
    })
    socket.on('error', (error: NodeJS.ErrnoException) =>
      finish(tlsFailure(`${error.code ?? ''} ${error.message}`, tls)),
    )
  })
}

/** What a TLS error says, and the flag that fixes it; undefined when it is not about TLS. */
export function tlsFailure(message: string, tls: TlsFiles | undefined): Verdict {
  if (/ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ETIMEDOUT|ENOTFOUND|EPIPE/.test(message)) return undefined
  if (/wrong version number|packet length too long|http request|WRONG_VERSION/i.test(message)) {
    return tls ? {cause: 'the server does not speak TLS', hint: 'use etcd://host:2379 for a plain endpoint'} : undefined
  }

  // a plain client that got this far met a TLS server
  if (!tls) return {cause: 'the server speaks TLS', hint: 'use etcds://host:2379 (with --cacert for a private CA)'}
  // Go's TLS server answers a missing client certificate with bad_certificate (42) or certificate_required (116)
  if (
    /certificate required|bad certificate|unknown ca|certificate unknown|unsupported certificate|alert number (4[2-9]|116)/i.test(
      message,
    )
  ) {
    return tls.cert
      ? {
          cause: 'the server refused the client certificate',
          hint: 'pass a --cert/--key pair signed by a CA the server trusts (its --trusted-ca-file)',
        }
      : {cause: 'the server requires a client certificate', hint: 'pass --cert and --key (ETCDCTL_CERT, ETCDCTL_KEY)'}
  }

  if (/self[- ]signed|unable to (get|verify)|verify failed|CERT_|ALTNAME|Hostname\/IP|certificate/i.test(message)) {
    return {
      cause: `the server's certificate is not trusted (${message.trim()})`,
      hint: 'pass the CA that signed it with --cacert (ETCDCTL_CACERT); its SAN must name the address you use',
    }
  }

  return undefined
}
