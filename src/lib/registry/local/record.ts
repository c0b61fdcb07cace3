import path from 'node:path'

import {UserError} from '../../errors.js'
import {decodeJsonValue, encodeJson, parseJson, skipped} from '../core/codec.js'
import {isSkipped, type OwnedRecord, type ReadResult} from '../core/driver.js'
import {instanceFileName, MAX_INSTANCE_FILE_BYTES} from './files.js'
import {ownerFileName} from './owners.js'

/** A decoded instance file and, for svc's own, what its liveness depends on. */
export interface FileRecord {
  result: ReadResult
  /** When the file was written (an svc before owner heartbeats touched it at every refresh). */
  mtimeMs: number
  /** Infinity for a record svc does not own (skipped ones): it never expires, it is never swept. */
  ttlMs: number
  /** The owner's heartbeat file name (owners.ts). */
  owner?: string
  /** A link or a non-file at an instance's name: listed as skipped, but no record (the next write replaces it). */
  notFile?: true
}

/**
 * When a record's liveness runs out: a TTL after its owner's last heartbeat or its own write, whichever is later
 * (records of an svc before owner heartbeats have no heartbeat file, and their touched mtime is the heartbeat).
 */
export function expiresAt(record: FileRecord, beat: number | undefined): number {
  if (record.ttlMs === Infinity) return Infinity
  return Math.max(record.mtimeMs, beat ?? 0) + record.ttlMs
}

/** The instance file's bytes: the common JSON shape plus the TTL its readers apply to the file's mtime. */
export function encodeFile(record: OwnedRecord): Buffer {
  const bytes = Buffer.from(encodeJson(record.instance, record.owner, {ttlMs: record.ttlMs}) + '\n')
  if (bytes.length > MAX_INSTANCE_FILE_BYTES) {
    throw new UserError(
      `the instance is ${bytes.length} bytes as JSON, above the local registry's ${MAX_INSTANCE_FILE_BYTES}`,
      'register fewer or shorter tags and meta values',
    )
  }

  return bytes
}

/**
 * The instance file through the one codec, when it is one of svc's own: the shape svc writes, every field valid,
 * a TTL, and the file named after the instance in its service's directory (so a copy cannot pose as another).
 */
export function decodeFile(content: string, mtimeMs: number, file: string, service: string): FileRecord {
  const never = {mtimeMs, ttlMs: Infinity}
  const place = {key: file, service}
  const parsed = parseJson(content, place)
  if ('skipped' in parsed) return {...never, result: parsed}
  const result = decodeJsonValue(parsed.value, place)
  if (isSkipped(result)) return {...never, result}
  const {ttlMs} = parsed.value as Record<string, unknown>
  if (typeof ttlMs !== 'number' || !Number.isFinite(ttlMs) || ttlMs <= 0) {
    return {...never, result: skipped(file, 'it has no valid ttlMs')}
  }

  const {instance} = result
  if (instanceFileName(instance.id) !== path.basename(file)) {
    const why = `it holds instance ${instance.id} of service ${instance.service}, which belongs in another file`
    return {...never, result: skipped(file, why)}
  }

  return {result, mtimeMs, ttlMs, ...(result.owner ? {owner: ownerFileName(result.owner)} : {})}
}
