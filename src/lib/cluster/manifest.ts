import {readFileSync, statSync} from 'node:fs'
import {readFile, rename, writeFile} from 'node:fs/promises'
import path from 'node:path'

import {UserError} from '../errors.js'
import {isRecord} from '../guards.js'
import {
  CLUSTER_KINDS,
  type ClusterKind,
  type ClusterManifest,
  type MemberManifest,
  type StartupTimings,
} from './types.js'

export const MANIFEST_FILE = 'manifest.json'

export function manifestPath(manifestOrDir: ClusterManifest | string): string {
  const dir = typeof manifestOrDir === 'string' ? manifestOrDir : manifestOrDir.dir
  return path.join(dir, MANIFEST_FILE)
}

/** Writes `<dir>/manifest.json` atomically (a reader never sees half of it). */
export async function writeManifest(manifest: ClusterManifest): Promise<void> {
  const file = manifestPath(manifest)
  const temporary = `${file}.${process.pid}.${Date.now()}.tmp`
  await writeFile(temporary, JSON.stringify(manifest, null, 2) + '\n')
  await rename(temporary, file)
}

/** A manifest file, or the cluster dir holding one. */
function resolveFile(file: string): string {
  try {
    if (statSync(file).isDirectory()) return manifestPath(file)
  } catch {
    // reported by the read
  }

  return file
}

export async function readManifest(file: string): Promise<ClusterManifest> {
  const resolved = resolveFile(file)
  let text: string
  try {
    text = await readFile(resolved, 'utf8')
  } catch (error) {
    throw noManifest(resolved, error)
  }

  return parseManifest(text, resolved)
}

export function readManifestSync(file: string): ClusterManifest {
  const resolved = resolveFile(file)
  let text: string
  try {
    text = readFileSync(resolved, 'utf8')
  } catch (error) {
    throw noManifest(resolved, error)
  }

  return parseManifest(text, resolved)
}

function noManifest(file: string, error: unknown): UserError {
  const code = (error as NodeJS.ErrnoException).code
  return new UserError(
    `no cluster manifest at ${file} (${code ?? String(error)})`,
    'start the cluster first, or name its directory',
  )
}

const isString = (v: unknown): v is string => typeof v === 'string'
const isPort = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0 && v < 65_536

function parseMember(value: unknown, where: string): MemberManifest {
  const bad = (what: string): UserError =>
    new UserError(`invalid cluster manifest ${where}: ${what}`, 'remove the cluster dir and start again')
  if (!isRecord(value)) throw bad('a member is not an object')
  const {name, index, clientPort, ports, pid, dataDir, logFile, command, args} = value
  if (!isString(name) || typeof index !== 'number' || !isPort(clientPort)) throw bad('member name, index or clientPort')
  if (!isRecord(ports) || !Object.values(ports).every((p) => isPort(p))) throw bad(`ports of ${name}`)
  if (pid !== undefined && (typeof pid !== 'number' || !Number.isInteger(pid))) throw bad(`pid of ${name}`)
  if (!isString(dataDir) || !isString(logFile) || !isString(command)) throw bad(`paths of ${name}`)
  if (!Array.isArray(args) || !args.every((a) => isString(a))) throw bad(`args of ${name}`)
  const member: MemberManifest = {
    name,
    index,
    clientPort,
    ports: ports as Record<string, number>,
    dataDir,
    logFile,
    command,
    args: args as string[],
  }
  if (pid !== undefined) member.pid = pid
  return member
}

function parseTimings(value: unknown): StartupTimings | undefined {
  if (!isRecord(value)) return undefined
  const {answeringMs, leaderMs, readyMs} = value
  if (typeof answeringMs !== 'number' || typeof leaderMs !== 'number' || typeof readyMs !== 'number') return undefined
  return {answeringMs, leaderMs, readyMs}
}

export function parseManifest(text: string, where: string): ClusterManifest {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new UserError(
      `invalid cluster manifest ${where}: ${(error as Error).message}`,
      'remove the cluster dir and start again',
    )
  }

  const bad = (what: string): UserError =>
    new UserError(`invalid cluster manifest ${where}: ${what}`, 'remove the cluster dir and start again')
  if (!isRecord(value)) throw bad('not an object')
  const {name, kind, dir, createdAt, members, backendUri, timings} = value
  if (!isString(name) || !isString(dir) || !isString(createdAt) || !isString(backendUri))
    throw bad('name, dir, createdAt or backendUri')
  if (!CLUSTER_KINDS.includes(kind as ClusterKind)) throw bad(`kind ${String(kind)}`)
  if (!Array.isArray(members) || members.length === 0) throw bad('no members')
  const manifest: ClusterManifest = {
    name,
    kind: kind as ClusterKind,
    dir,
    createdAt,
    members: members.map((m) => parseMember(m, where)),
    backendUri,
  }
  const parsedTimings = parseTimings(timings)
  if (parsedTimings) manifest.timings = parsedTimings
  return manifest
}
