import {appendFileSync, readdirSync, readFileSync} from 'node:fs'
import path from 'node:path'

/**
 * "No secret ever printed": every svc process a test spawns (test/helpers/cli.ts) leaves a copy of its stdout and
 * stderr in SVC_TEST_OUTPUT_DIR (made by test/global-setup.ts); tests record the secrets they hand to svc, and the
 * global teardown fails the run when one shows up in any copy.
 */
export const OUTPUT_DIR_ENV = 'SVC_TEST_OUTPUT_DIR'
const SECRETS_FILE = 'secrets'
/** Copies of outputs end with this; the secrets file does not. */
export const OUTPUT_SUFFIX = '.out'

export function outputDir(): string | undefined {
  return process.env[OUTPUT_DIR_ENV] || undefined
}

/** Registers a secret that no svc output may contain (base64, one a line, so any byte is safe). */
export function recordSecret(value: string): void {
  const dir = outputDir()
  if (dir === undefined || value === '') return
  appendFileSync(path.join(dir, SECRETS_FILE), Buffer.from(value).toString('base64') + '\n')
}

function readSecrets(dir: string): string[] {
  let text: string
  try {
    text = readFileSync(path.join(dir, SECRETS_FILE), 'utf8')
  } catch {
    return []
  }

  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => Buffer.from(line, 'base64').toString())
}

/** Where a recorded secret leaked: the copy's file name (it names the test file); never the secret itself. */
export interface Leak {
  file: string
  secret: number
}

/** Every recorded secret found in any copy of svc's output under `dir`. */
export function findLeaks(dir: string): Leak[] {
  const secrets = readSecrets(dir)
  if (secrets.length === 0) return []
  const leaks: Leak[] = []
  for (const name of readdirSync(dir)
    .filter((n) => n.endsWith(OUTPUT_SUFFIX))
    .sort()) {
    const text = readFileSync(path.join(dir, name), 'utf8')
    for (const [i, secret] of secrets.entries()) if (text.includes(secret)) leaks.push({file: name, secret: i + 1})
  }

  return leaks
}

/** The copy of one spawned process's output: `<test file>-<pid>.out`. */
export function outputCopyPath(dir: string, testPath: string | undefined, pid: number | undefined): string {
  const base = testPath ? path.basename(testPath).replace(/\.[cm]?tsx?$/, '') : 'unknown-test'
  return path.join(dir, `${base}-${pid ?? 'nopid'}${OUTPUT_SUFFIX}`)
}
