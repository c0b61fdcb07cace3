/**
 * svc as a library: the registry abstraction every svc command uses, and the gateway.
 *
 * ```ts
 * import {openRegistry} from 'svc-discovery'
 * const registry = await openRegistry('etcd://127.0.0.1:2379')
 * const handle = await registry.register({service: 'web', address: '10.0.0.5', port: 8080})
 * console.log(await registry.listInstances('web'))
 * await handle.close()
 * await registry.close()
 * ```
 *
 * `openRegistry` takes a backend name or URI (local, zk://, consul://, etcd://) as `svc --backend` does; every
 * backend keeps the same registration lifecycle (DESIGN.md). `runProxy` serves `/<service>/<path>` from a
 * registry's watch.
 */
export {
  type BackendOptions,
  type BackendSpec,
  describeBackend,
  openRegistry,
  parseBackend,
  withDefaults,
} from './registry/index.js'
export * from './registry/types.js'
export {watchCounters, type WatchCounters} from './registry/core/watch.js'
export {type RunningProxy, runProxy, type RunProxyOptions} from './proxy/index.js'
export {BackendError, BackendUnavailableError, NotFoundError, UserError} from './errors.js'
