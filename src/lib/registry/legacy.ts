import type {BackendOptions} from './options.js'
import {foreignRecords} from './core/foreign.js'
import type {Registry, Removal} from './types.js'

/** A backend not yet ported onto core/: its deregister says only whether it removed something. */
export interface LegacyRegistry extends Omit<Registry, 'deregister'> {
  deregister(service: string, id: string): Promise<boolean>
}

/**
 * The Registry face of a backend not yet ported onto core/ (the foreign-record rule applied to its service list);
 * goes with the last of them.
 */
export function fromLegacy(registry: LegacyRegistry, options: BackendOptions): Registry {
  const foreign = foreignRecords(options.log)
  return {
    kind: registry.kind,
    nativeChecks: registry.nativeChecks,
    description: registry.description,
    ping: () => registry.ping(),
    register: (input, opts) => registry.register(input, opts),
    deregister: async (service, id): Promise<Removal> => ({removed: await registry.deregister(service, id)}),
    listServices: async () => foreign.serviceNames(await registry.listServices()),
    listInstances: (service) => registry.listInstances(service),
    watch: (service, opts) => registry.watch(service, opts),
    cluster: () => registry.cluster(),
    close: () => registry.close(),
  }
}
