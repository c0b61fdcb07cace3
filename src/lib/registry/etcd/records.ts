import {type IKeyValue, Range} from 'etcd3'

import {isRecord} from '../../guards.js'
import {decodeFields, type RecordFields, skipped} from '../core/codec.js'
import type {OwnedRecord, ReadResult} from '../core/driver.js'
import type {EtcdConnection} from './client.js'

/** registrator's etcd backend stored `<ip>:<port>` as the value of `<prefix>/<service>/<id>`. */
const REGISTRATOR_VALUE = /^(\[[\da-fA-F:.]+\]|[\w.-]+):(\d{1,5})$/

export function servicePrefix(prefix: string, service: string): string {
  return `${prefix}/${service}/`
}

export function instanceKey(prefix: string, service: string, id: string): string {
  return `${servicePrefix(prefix, service)}${id}`
}

/** The value svc writes: the instance's fields at the top level (as etcdctl users read them) and its owner. */
export function encodeRecord({instance, owner}: OwnedRecord): string {
  return JSON.stringify({...instance, owner})
}

/** The record under `key`: the key names its service and id, the value holds the rest. */
export function decodeRecord(prefix: string, key: string, text: string): ReadResult {
  const rest = key.startsWith(`${prefix}/`) ? key.slice(prefix.length + 1) : undefined
  const slash = rest?.indexOf('/') ?? -1
  if (rest === undefined || slash <= 0) return skipped(key, 'the key is not <prefix>/<service>/<id>')
  const place = {key, service: rest.slice(0, slash), id: rest.slice(slash + 1)}
  const fields = valueFields(text.trim())
  if (typeof fields === 'string') return skipped(key, fields)
  return decodeFields({service: place.service, id: place.id, ...fields}, place)
}

/** The codec's fields in a value, or why there are none. */
function valueFields(text: string): RecordFields | string {
  const registrator = REGISTRATOR_VALUE.exec(text)
  if (registrator) return {address: registrator[1]!.replaceAll(/^\[|\]$/g, ''), port: Number(registrator[2])}
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return text === '' ? 'it is empty' : 'it is not JSON'
  }

  if (!isRecord(value)) return 'it is not a JSON object'
  // hand-written values often quote the port
  const {port} = value
  return typeof port === 'string' && /^\d{1,5}$/.test(port) ? {...value, port: Number(port)} : value
}

/** Keys a range read returns per request: a page of 10,000 records would pass gRPC's 4 MB default. */
const PAGE = 1000

/** The service a key is filed under in a watch: the segment after the prefix (the whole rest if it has no slash). */
export function keySegment(prefix: string, key: string): string {
  const rest = key.startsWith(`${prefix}/`) ? key.slice(prefix.length + 1) : key
  const slash = rest.indexOf('/')
  return slash === -1 ? rest : rest.slice(0, slash)
}

/**
 * Visits every key and value in `range`, read in pages at the revision of the first one (one consistent state,
 * never held whole as one response); returns that revision.
 */
export async function scanRange(
  connection: EtcdConnection,
  range: Range,
  visit: (key: string, kv: IKeyValue) => void,
): Promise<number> {
  const page = (from: Buffer, revision?: number) =>
    connection.op((client) => {
      const read = client.getAll().inRange({start: from, end: range.end}).limit(PAGE)
      return (revision === undefined ? read : read.revision(revision)).exec()
    })
  let pending = page(range.start)
  // every page is read at the revision of the first
  let revision: number | undefined
  for (;;) {
    const response = await pending
    revision ??= Number(response.header.revision)
    const last = response.kvs.at(-1)
    const more = response.more && last !== undefined
    // the next page (just after the last key read) is asked for before this one is visited: the server reads it
    // while this process decodes this one
    if (more) {
      pending = page(Buffer.concat([last.key, Buffer.from([0])]), revision)
      // a visit that throws leaves it unawaited
      pending.catch(() => {})
    }

    for (const kv of response.kvs) visit(kv.key.toString(), kv)
    if (!more) return revision
  }
}

/** Every record under a key prefix at one revision, skipped ones included. */
export async function readRange(
  connection: EtcdConnection,
  prefix: string,
): Promise<{records: Map<string, ReadResult>; revision: number}> {
  const records = new Map<string, ReadResult>()
  const revision = await scanRange(connection, Range.prefix(prefix), (key, kv) => {
    records.set(key, decodeRecord(connection.prefix, key, kv.value.toString()))
  })
  return {records, revision}
}
