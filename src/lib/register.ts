import {errorMessage} from './errors.js'
import {type CheckResult, runCheck, scheduleChecks} from './health/check.js'
import {type StreamEvent, streamEvent} from './events.js'
import type {CheckSpec, InstanceInput, Registry, ServiceInstance} from './registry/types.js'

export interface RegistrationRun {
  registry: Registry
  input: InstanceInput
  ttlMs?: number
  check?: CheckSpec
  /** Aborting deregisters the instance and ends the run. */
  signal: AbortSignal
  log: (line: string) => void
  onRegistered?: (instance: ServiceInstance) => void
  /** The NDJSON events of the run (registered, lost, restored, error, deregistered), for --json. */
  events?: (event: StreamEvent) => void
}

/**
 * Registers one instance and keeps it alive until the signal aborts, then deregisters it.
 * Consul runs checks natively; on other backends this process runs them and publishes the result.
 */
export async function runRegistration(run: RegistrationRun): Promise<ServiceInstance> {
  const {check, log, registry} = run
  const native = registry.nativeChecks
  let input = run.input
  let last: CheckResult | undefined
  if (check && !native) {
    last = await runCheck(check)
    log(`health ${last.health}: ${last.output}`)
    input = {...input, health: last.health}
  }

  const handle = await registry.register(input, {
    check: native ? check : undefined,
    ttlMs: run.ttlMs,
    onStateChange(state, detail) {
      log(`registration ${state}: ${detail}`)
      run.events?.(streamEvent(state, {service: run.input.service, id: run.input.id, detail}))
    },
  })
  run.events?.(streamEvent('registered', {service: handle.instance.service, instance: handle.instance}))
  run.onRegistered?.(handle.instance)

  const stopChecks =
    check && !native
      ? scheduleChecks(check, async (result) => {
          if (result.health !== last?.health) log(`health ${result.health}: ${result.output}`)
          last = result
          try {
            await handle.setHealth(result.health, result.output)
          } catch (error) {
            log(`could not publish health: ${errorMessage(error)}`)
          }
        })
      : undefined

  await new Promise<void>((resolve) => {
    if (run.signal.aborted) resolve()
    else run.signal.addEventListener('abort', () => resolve(), {once: true})
  })
  stopChecks?.()
  await handle.close()
  run.events?.(streamEvent('deregistered', {service: handle.instance.service, id: handle.instance.id}))
  return handle.instance
}
