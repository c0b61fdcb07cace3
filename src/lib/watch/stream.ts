import type {Registry, ServiceInstance} from '../registry/types.js'
import {type ChangeRecord, formatChange, toChanges} from './changes.js'
import {ChangeHandler} from './exec.js'

export interface StreamOptions {
  service?: string
  json: boolean
  exec?: string
  debounceMs?: number
  signal: AbortSignal
  /** One result line (a change); written at once so pipes see it. */
  out: (line: string) => void
  /** Diagnostics: connection state, handler failures. */
  log: (line: string) => void
}

/** Streams a registry's changes as lines (or NDJSON) until the signal aborts; runs the --exec handler. */
export async function streamChanges(registry: Registry, opts: StreamOptions): Promise<void> {
  const state = new Map<string, Map<string, ServiceInstance>>()
  const handler = opts.exec
    ? new ChangeHandler(opts.exec, {debounceMs: opts.debounceMs ?? 100, log: opts.log})
    : undefined
  try {
    for await (const event of registry.watch(opts.service, {signal: opts.signal})) {
      if (event.type === 'status') {
        opts.log(`watch ${event.state}: ${event.detail}`)
        continue
      }

      if (event.type === 'snapshot') {
        const n = event.instances.length
        opts.log(
          `watching ${opts.service ?? 'all services'} on ${registry.description}: ${n} instance${n === 1 ? '' : 's'}`,
        )
      }

      const previous = event.type === 'changed' ? event.previous : undefined
      const changed = new Set<string>(event.type === 'snapshot' && opts.service ? [opts.service] : [])
      for (const record of toChanges(event)) {
        apply(state, record)
        changed.add(record.service)
        opts.out(opts.json ? JSON.stringify(record) : formatChange(record, previous))
      }

      // like `consul watch`, the handler also runs once at start-up with the current instances
      for (const service of changed) {
        handler?.notify(service, event.type, [...(state.get(service)?.values() ?? [])])
      }
    }
  } finally {
    await handler?.close()
  }
}

function apply(state: Map<string, Map<string, ServiceInstance>>, record: ChangeRecord): void {
  let instances = state.get(record.service)
  if (!instances) {
    instances = new Map()
    state.set(record.service, instances)
  }

  if (record.type === 'removed') instances.delete(record.instance.id)
  else instances.set(record.instance.id, record.instance)
}
