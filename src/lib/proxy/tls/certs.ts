import {createPrivateKey, X509Certificate} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import {createSecureContext, type SecureContext} from 'node:tls'

import {errorMessage, UserError} from '../../errors.js'

/** One `--tls-cert FILE --tls-key FILE` pair. */
export interface CertFiles {
  cert: string
  key: string
}

/** A loaded pair: its context and the host names it answers for (lower case; `*.x` for a wildcard). */
export interface LoadedCert {
  files: CertFiles
  names: string[]
  /** The PEM texts, for tls.Server#setSecureContext (the default pair). */
  pem: {cert: string; key: string}
  context: SecureContext
}

/** The certificates a TLS listener serves: the first pair is the default, the others are picked by SNI. */
export class CertStore {
  private readonly exact = new Map<string, LoadedCert>()
  private readonly wildcard = new Map<string, LoadedCert>()

  constructor(readonly certs: readonly LoadedCert[]) {
    // the first pair naming a host wins, as the order on the command line says
    for (const cert of certs) {
      for (const name of cert.names) {
        const map = name.startsWith('*.') ? this.wildcard : this.exact
        const key = name.startsWith('*.') ? name.slice(2) : name
        if (!map.has(key)) map.set(key, cert)
      }
    }
  }

  get default(): LoadedCert {
    return this.certs[0]!
  }

  /** The certificate for an SNI host name: an exact name, then a one-label wildcard, else the default. */
  select(servername: string | undefined): LoadedCert {
    if (servername === undefined || servername === '') return this.default
    const host = servername.toLowerCase().replace(/\.$/, '')
    const exact = this.exact.get(host)
    if (exact) return exact
    const dot = host.indexOf('.')
    return (dot > 0 ? this.wildcard.get(host.slice(dot + 1)) : undefined) ?? this.default
  }
}

/** The DNS names a certificate is valid for: its SAN DNS entries, else its subject CN. */
export function certificateNames(x509: X509Certificate): string[] {
  const san = x509.subjectAltName ?? ''
  const names = san
    .split(/,\s*/)
    .filter((entry) => entry.startsWith('DNS:'))
    .map((entry) => entry.slice(4).trim().toLowerCase())
  if (names.length > 0) return names
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(x509.subject)?.[1]
  return cn === undefined ? [] : [cn.trim().toLowerCase()]
}

/** Reads and checks one pair: both PEM, the key matching the certificate. Throws a UserError naming the file. */
export async function loadCert(files: CertFiles): Promise<LoadedCert> {
  const cert = await readPem(files.cert, '--tls-cert')
  const key = await readPem(files.key, '--tls-key')
  let x509: X509Certificate
  try {
    x509 = new X509Certificate(cert)
  } catch (error) {
    throw new UserError(`${files.cert} holds no PEM certificate (${errorMessage(error)})`, certHint)
  }

  try {
    if (!x509.checkPrivateKey(createPrivateKey(key)))
      throw new UserError(`${files.key} is not the key of ${files.cert}`, 'pass each certificate with its own key')
  } catch (error) {
    if (error instanceof UserError) throw error
    throw new UserError(`${files.key} holds no PEM private key (${errorMessage(error)})`, certHint)
  }

  return {
    files,
    names: certificateNames(x509),
    pem: {cert, key},
    context: createSecureContext(contextOptions(cert, key)),
  }
}

const certHint = 'pass PEM files: --tls-cert with the certificate (chain), --tls-key with its unencrypted key'

/** The options every context gets: TLS 1.2 at least. */
export function contextOptions(cert: string, key: string): {cert: string; key: string; minVersion: 'TLSv1.2'} {
  return {cert, key, minVersion: 'TLSv1.2'}
}

/** Loads every pair (the first is the default). */
export async function loadCertStore(pairs: readonly CertFiles[]): Promise<CertStore> {
  return new CertStore(await Promise.all(pairs.map(async (pair) => loadCert(pair))))
}

/** Pairs `--tls-cert` and `--tls-key` values in order; a count mismatch is a usage error. */
export function pairCertFlags(certs: readonly string[], keys: readonly string[]): CertFiles[] {
  if (certs.length !== keys.length) {
    throw new UserError(
      `${certs.length} --tls-cert but ${keys.length} --tls-key`,
      'give each --tls-cert FILE its --tls-key FILE, in the same order',
    )
  }

  return certs.map((cert, i) => ({cert, key: keys[i]!}))
}

async function readPem(file: string, flag: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    throw new UserError(
      `cannot read ${flag} ${file} (${code ?? errorMessage(error)})`,
      `check the path given to ${flag}`,
    )
  }
}
