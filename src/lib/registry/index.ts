import {CoreRegistry} from './core/registry.js'
import type {Driver} from './core/driver.js'
import {type BackendOptions, withDefaults} from './options.js'
import {type BackendSpec, parseBackend} from './spec.js'
import type {Registry} from './types.js'

export * from './types.js'
export {type BackendSpec, describeBackend, parseBackend} from './spec.js'
export {type BackendOptions, withDefaults} from './options.js'

/** A backend's driver under the one core: `registryOver(createDriver(spec, options), options)`. */
export function registryOver(driver: Driver, options: BackendOptions): Registry {
  return new CoreRegistry(driver, options)
}

/** Opens a registry; backend clients are imported only when their backend is used, to keep start-up fast. */
export async function openRegistry(
  spec: BackendSpec | string,
  options: Partial<BackendOptions> = {},
): Promise<Registry> {
  const resolved = typeof spec === 'string' ? parseBackend(spec) : spec
  const opts = withDefaults(options)
  switch (resolved.kind) {
    case 'local': {
      return registryOver((await import('./local/index.js')).createDriver(resolved, opts), opts)
    }

    case 'zk': {
      // the members are probed while the driver and its client library load: the first session starts at once
      const early = (await import('./zookeeper/members.js')).probeEarly(resolved, opts.connectTimeoutMs)
      return registryOver((await import('./zookeeper/index.js')).createDriver(resolved, opts, early), opts)
    }

    case 'consul': {
      return registryOver((await import('./consul/index.js')).createDriver(resolved, opts), opts)
    }

    case 'etcd': {
      // the members' HTTP/2 handshakes run while etcd3 and gRPC load: the first call goes out at once
      const early = (await import('./etcd/handshake.js')).handshakeEarly(resolved, opts.connectTimeoutMs)
      return registryOver((await import('./etcd/index.js')).createDriver(resolved, opts, early), opts)
    }
  }
}
