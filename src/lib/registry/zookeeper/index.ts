import {BugError, UserError} from '../../errors.js'
import {
  isSkipped,
  type Binding,
  type Driver,
  type DriverWatchSink,
  type OwnedRecord,
  type ReadResult,
} from '../core/driver.js'
import type {BackendOptions} from '../options.js'
import {describeBackend} from '../spec.js'
import type {ClusterInfo, ServiceSummary} from '../types.js'
import {createNode, recordPath, ZkBinding} from './binding.js'
import {ZK_DEFAULT_SESSION_TIMEOUT_MS, ZkClient, type ZkSpec} from './client.js'
import {describeEnsemble} from './cluster.js'
import {Layout} from './layout.js'
import {encodePayload} from './records.js'
import {children, data, remove, removeIfEmpty, setData, stat} from './znodes.js'
import {WatchLoop} from './watch.js'

export {PRIVATE_PORT_META, decodeZnode, encodePayload} from './records.js'
export {digestId} from './security.js'
export {ZK_DEFAULT_SESSION_TIMEOUT_MS} from './client.js'

/** ZooKeeper's floor is two ticks of the server; below a second the core refuses anyway. */
const MIN_TTL_MS = 1000

/**
 * The ZooKeeper driver: one ephemeral znode per record, so a record's liveness is the session's. One session
 * serves every request, watch and record of a registry; when it ends the core re-creates the records on the next.
 */
export function createDriver(spec: ZkSpec, options: BackendOptions): Driver {
  if (spec.hosts.some((h) => h.host.includes(':'))) {
    throw new UserError(
      'the ZooKeeper client cannot reach IPv6 addresses',
      'name the members by IPv4 address or host name',
    )
  }

  const client = new ZkClient(spec, options)
  const layout = new Layout(spec.base)
  const bindings = new Set<ZkBinding>()
  const bindingOf = (binding: Binding): ZkBinding => {
    if (binding instanceof ZkBinding) return binding
    throw new BugError('a binding of another driver was passed to the ZooKeeper driver')
  }

  /** The znode of a record by its id, or by its name (registrator's znodes are named after their address). */
  const find = async (service: string, id: string) =>
    client.run(`find ${service} ${id}`, async (s) => {
      const nodes = await layout.readService(s, service)
      return (
        nodes.find(({record}) => !isSkipped(record) && record.instance.id === id) ?? nodes.find((n) => n.child === id)
      )
    })

  return {
    kind: 'zk',
    nativeChecks: false,
    description: describeBackend(spec),
    limits: {defaultTtlMs: ZK_DEFAULT_SESSION_TIMEOUT_MS, minTtlMs: MIN_TTL_MS, refreshApplies: false},

    async ping() {
      await client.run(`exists ${layout.base}`, (s) => stat(s, layout.base))
    },

    async write(record: OwnedRecord) {
      await client.useSessionTimeout(record.ttlMs, bindings.size === 0)
      const path = recordPath(layout, record)
      const session = await client.run(`register ${path}`, async (s) => {
        await createNode(s, layout, record)
        return s
      })
      const binding = new ZkBinding(client, session, path, (b) => bindings.delete(b))
      bindings.add(binding)
      return binding
    },

    async rewrite(record, binding) {
      const {session, path} = bindingOf(binding)
      // a record of a session that ended comes back through the core's write, with the current content
      if (session.dead) return
      await client.run(
        `update ${path}`,
        async (s) => {
          if (!(await setData(s, path, encodePayload(record.instance, record.owner))))
            await createNode(s, layout, record)
        },
        session,
      )
    },

    async read(service, id) {
      return (await find(service, id))?.record
    },

    async remove(service, id) {
      // a remove whose answer was lost (a member went away) may have been applied: a retry that then finds
      // nothing reports the removal it made, not "not registered"
      let issued = false
      return client.run(`deregister ${service} ${id}`, async (s) => {
        const nodes = await layout.readService(s, service)
        const target =
          nodes.find(({record}) => !isSkipped(record) && record.instance.id === id) ??
          nodes.find(({child}) => child === id)
        if (!target) return issued
        issued = true
        const path = layout.nodePath(service, target.child)
        const node = await data(s, path)
        if (!node || !(await remove(s, path, node.stat.version))) return false
        await removeIfEmpty(s, layout.servicePath(service))
        return true
      })
    },

    async listServices(): Promise<ServiceSummary[]> {
      return client.run(`list ${layout.base}`, async (s) => {
        const names = (await children(s, layout.base)) ?? []
        const usable = names.filter((name) => {
          const unusable = layout.checkService(name)
          if (unusable) client.warnOnce(unusable.key, `${'zookeeper'}: skipping ${unusable.key}: ${unusable.reason}`)
          return !unusable
        })
        const summaries = await Promise.all(
          usable.map(async (name): Promise<ServiceSummary> => {
            const records = (await layout.readService(s, name)).map((n) => n.record)
            const instances = records.flatMap((r) => (isSkipped(r) ? [] : [r.instance]))
            return {name, instances: instances.length, passing: instances.filter((i) => i.health === 'passing').length}
          }),
        )
        return summaries.filter((summary) => summary.instances > 0).sort((a, b) => a.name.localeCompare(b.name))
      })
    },

    async listRecords(service): Promise<ReadResult[]> {
      const nodes = await client.run(`list ${layout.servicePath(service)}`, (s) => layout.readService(s, service))
      return nodes.map((n) => n.record)
    },

    watch(service: string | undefined, sink: DriverWatchSink) {
      return new WatchLoop(client, layout, service, sink).start()
    },

    cluster(): Promise<ClusterInfo> {
      return describeEnsemble(client.hosts, options.requestTimeoutMs)
    },

    onEvent: (listener) => client.onEvent(listener),

    async close() {
      bindings.clear()
      await client.close()
    },
  }
}
