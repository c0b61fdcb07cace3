import {CoreRegistry} from '../../src/lib/registry/core/registry.js'
import {LocalDriver} from '../../src/lib/registry/local/index.js'
import type {BackendOptions} from '../../src/lib/registry/options.js'

/** The local registry as openRegistry builds it, with the path of an instance's file for planting and checking. */
export type LocalRegistry = CoreRegistry & {instancePath(service: string, id: string): string}

export function localRegistry(spec: {kind: 'local'; dir: string}, options: BackendOptions): LocalRegistry {
  const driver = new LocalDriver(spec, options)
  return Object.assign(new CoreRegistry(driver, options), {
    instancePath: (service: string, id: string) => driver.instancePath(service, id),
  })
}
