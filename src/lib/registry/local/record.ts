import path from 'node:path'

import {UserError} from '../../errors.js'
import {decodeJsonValue, encodeJson, parseJson, skipped} from '../core/codec.js'
import {isSkipped, type OwnedRecord, type ReadResult} from '../core/driver.js'
import {instanceFileName, MAX_INSTANCE_FILE_BYTES} from './files.js'

/** A decoded instance file and, for svc's own, when its heartbeat runs out. */
export interface FileRecord {
  result: ReadResult
  expiresAt: number
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
  const never = {expiresAt: Infinity}
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

  return {result, expiresAt: mtimeMs + ttlMs}
}
