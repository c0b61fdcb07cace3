import {type BackendOptions, withDefaults} from './options.js'
import {type BackendSpec, parseBackend} from './spec.js'
import type {Registry} from './types.js'

export * from './types.js'
export {type BackendSpec, describeBackend, parseBackend} from './spec.js'
export {type BackendOptions, withDefaults} from './options.js'

/** Opens a registry; backend clients are imported only when their backend is used, to keep start-up fast. */
export async function openRegistry(
  spec: BackendSpec | string,
  options: Partial<BackendOptions> = {},
): Promise<Registry> {
  const resolved = typeof spec === 'string' ? parseBackend(spec) : spec
  const opts = withDefaults(options)
  switch (resolved.kind) {
    case 'local': {
      const {LocalRegistry} = await import('./local.js')
      return new LocalRegistry(resolved, opts)
    }

    case 'zk': {
      const {ZooKeeperRegistry} = await import('./zookeeper.js')
      return new ZooKeeperRegistry(resolved, opts)
    }

    case 'consul': {
      const {ConsulRegistry} = await import('./consul.js')
      return new ConsulRegistry(resolved, opts)
    }

    case 'etcd': {
      const {EtcdRegistry} = await import('./etcd.js')
      return new EtcdRegistry(resolved, opts)
    }
  }
}

export async function withRegistry<T>(
  spec: BackendSpec | string,
  options: Partial<BackendOptions>,
  fn: (registry: Registry) => Promise<T>,
): Promise<T> {
  const registry = await openRegistry(spec, options)
  try {
    return await fn(registry)
  } finally {
    await registry.close()
  }
}
