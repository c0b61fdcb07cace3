import type {Health, Registry, RegistrationHandle} from '../registry/types.js'
import type {AgentEventBody, AgentOptions, PlannedService} from './types.js'

/**
 * Registers one planned instance (a container's port or a Swarm service's) with its TTL, its native check where
 * the backend runs checks itself, and its lost/restored/error reports as agent events naming `container`.
 */
export function registerPlanned(opts: {
  registry: Registry
  planned: PlannedService
  options: AgentOptions
  health: Health
  container: string
  emit: (body: AgentEventBody) => void
}): Promise<RegistrationHandle> {
  const {registry, planned, options, emit} = opts
  return registry.register(
    {...planned.input, health: opts.health},
    {
      ttlMs: planned.ttlMs ?? options.ttlMs,
      refreshMs: options.ttlRefreshMs,
      check: registry.nativeChecks ? planned.check : undefined,
      onStateChange(state, detail) {
        const what = `${planned.input.service} ${planned.input.id}: ${detail}`
        if (state === 'error') emit({type: 'error', message: what, container: opts.container})
        else emit({type: 'backend', state: state === 'lost' ? 'lost' : 'restored', detail: what})
      },
    },
  )
}
