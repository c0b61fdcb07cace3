import {execFileSync} from 'node:child_process'
import {mkdtempSync, readFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

export interface TestCert {
  cert: string
  key: string
  /** The certificate's PEM, for a client's `ca`. */
  pem: Buffer
  serial: string
}

/** A fresh temporary directory for certificates. */
export function certDir(): string {
  return mkdtempSync(path.join(tmpdir(), 'svc-tls-'))
}

/** A self-signed certificate for `names` (SAN DNS entries) written as `<file>.crt` and `<file>.key` in `dir`. */
export function makeCert(dir: string, file: string, names: string[]): TestCert {
  const cert = path.join(dir, `${file}.crt`)
  const key = path.join(dir, `${file}.key`)
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      `/CN=${names[0]}`,
      '-addext',
      `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`,
    ],
    {stdio: 'ignore', timeout: 10_000},
  )
  const serial = execFileSync('openssl', ['x509', '-in', cert, '-noout', '-serial'], {timeout: 10_000})
    .toString()
    .trim()
    .replace(/^serial=/, '')
  return {cert, key, pem: readFileSync(cert), serial}
}
