import type {Registry, ServiceInstance} from '../registry/types.js'
import {SWARM_SERVICE_KEY} from './settings.js'

/** One instance --cleanup removed. */
export interface CleanedUp {
  instance: ServiceInstance
  /** The container (or Swarm task) it came from, for messages. */
  container: string
}

/**
 * --cleanup: removes the instances this host's agent registered (source.host) that `keep` does not claim, on every
 * backend; instances of other hosts and other tools are never touched.
 */
export async function removeStale(
  registry: Registry,
  hostname: string,
  keep: (instance: ServiceInstance) => boolean,
  removed: (gone: CleanedUp) => void,
): Promise<void> {
  for (const summary of await registry.listServices()) {
    for (const instance of await registry.listInstances(summary.name)) {
      const source = instance.source
      if (!source || source.host !== hostname || keep(instance)) continue
      if ((await registry.deregister(instance.service, instance.id)).removed) {
        removed({instance, container: source.containerName || source.containerId.slice(0, 12)})
      }
    }
  }
}

/** An instance the agent registered from a Swarm service (left to the Swarm side's own cleanup). */
export function isSwarmInstance(instance: ServiceInstance): boolean {
  return Object.hasOwn(instance.meta, SWARM_SERVICE_KEY)
}
