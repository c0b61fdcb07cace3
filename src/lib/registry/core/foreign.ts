import {quote} from '../../errors.js'
import {validateServiceName} from '../validate.js'
import {isSkipped, type ReadResult, type SkippedRecord, type StoredRecord} from './driver.js'

const byLog = new WeakMap<(message: string) => void, ForeignRecords>()

/**
 * The foreign-record rule for everything that reports through `log`: a registry's core and its driver share one
 * instance (they share the log), so each key is reported once whichever of them read it.
 */
export function foreignRecords(log: (message: string) => void): ForeignRecords {
  let foreign = byLog.get(log)
  if (!foreign) {
    foreign = new ForeignRecords(log)
    byLog.set(log, foreign)
  }

  return foreign
}

/**
 * The foreign-record rule: a record svc cannot read is skipped with one warning per record key, never deleted and
 * never fatal, however often it is read.
 */
export class ForeignRecords {
  private readonly warned = new Set<string>()
  private readonly log: (message: string) => void

  constructor(log: (message: string) => void) {
    this.log = log
  }

  skip(record: SkippedRecord): void {
    if (this.warned.has(record.key)) return
    this.warned.add(record.key)
    this.log(`skipping ${shown(record.key)}: ${record.reason}`)
  }

  /** The readable records; the others are reported. */
  select(results: readonly ReadResult[]): StoredRecord[] {
    const kept: StoredRecord[] = []
    for (const result of results) {
      if (isSkipped(result)) this.skip(result)
      else kept.push(result)
    }

    return kept
  }

  /** The names of a service listing that svc can use; another tool's `a/b` is skipped like any foreign record. */
  serviceNames<T extends {name: string}>(entries: readonly T[]): T[] {
    return entries.filter((entry) => {
      const why = serviceNameProblem(entry.name)
      if (why) this.skip({skipped: true, key: entry.name, reason: why})
      return why === undefined
    })
  }
}

function serviceNameProblem(name: string): string | undefined {
  try {
    validateServiceName(name)
    return undefined
  } catch (error) {
    return `it is not a service name svc can use (${error instanceof Error ? error.message : String(error)})`
  }
}

/** A key as it is, unless it could break the line or flood it (another tool chose it). */
function shown(key: string): string {
  return /^[^\p{Cc}\p{Zl}\p{Zp}]{1,200}$/u.test(key) ? key : quote(key, 120)
}
