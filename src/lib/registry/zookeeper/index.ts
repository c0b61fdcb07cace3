import {BugError, UserError} from '../../errors.js'
import {
  type Binding,
  type Driver,
  type DriverEvent,
  type DriverWatchSink,
  isSkipped,
  type OwnedRecord,
  type ReadResult,
  type RecordKey,
} from '../core/driver.js'
import {instanceKey as recordKey} from '../core/diff.js'
import {foreignRecords} from '../core/foreign.js'
import type {BackendOptions} from '../options.js'
import {describeBackend} from '../spec.js'
import type {ClusterInfo, ServiceSummary} from '../types.js'
import {createNode, recordPath, ZkBinding} from './binding.js'
import {ZK_DEFAULT_SESSION_TIMEOUT_MS, ZkClient, type ZkSpec} from './client.js'
import {describeEnsemble} from './cluster.js'
import {Layout} from './layout.js'
import type {EarlyProbe} from './members.js'
import {encodePayload} from './records.js'
import type {Session} from './session.js'
import {pipelined} from './pipeline.js'
import {WatchLoop} from './watch.js'
import {children, data, remove, removeIfEmpty, setData, stat} from './znodes.js'

export {PRIVATE_PORT_META, decodeZnode, encodePayload} from './records.js'
export {digestId} from './security.js'
export {ZK_DEFAULT_SESSION_TIMEOUT_MS, type ZkSpec} from './client.js'

/** ZooKeeper's floor is two ticks of the server, which it enforces itself; svc's floor is a second. */
const MIN_TTL_MS = 1000

/** `early`: the members' probe openRegistry started before it loaded this module, for the first session. */
export function createDriver(spec: ZkSpec, options: BackendOptions, early?: EarlyProbe): Driver {
  return new ZooKeeperDriver(spec, options, early)
}

/**
 * The ZooKeeper driver: one ephemeral znode per record, so a record's liveness is the session's. One session
 * serves every request, watch and record of a registry; when it ends, the core re-creates the records on the next.
 */
class ZooKeeperDriver implements Driver {
  readonly kind = 'zk'
  readonly nativeChecks = false
  readonly description: string
  readonly limits = {defaultTtlMs: ZK_DEFAULT_SESSION_TIMEOUT_MS, minTtlMs: MIN_TTL_MS, refreshApplies: false}
  private readonly client: ZkClient
  private readonly layout: Layout
  private readonly options: BackendOptions
  /** The binding standing for each record this registry wrote, by the core's instance key. */
  private readonly bindings = new Map<string, ZkBinding>()

  constructor(spec: ZkSpec, options: BackendOptions, early?: EarlyProbe) {
    if (spec.hosts.some((h) => h.host.includes(':'))) {
      early?.cancel()
      throw new UserError(
        'the ZooKeeper client cannot reach IPv6 addresses',
        'name the members by IPv4 address or host name',
      )
    }

    this.description = describeBackend(spec)
    this.client = new ZkClient(spec, options, early)
    this.layout = new Layout(spec.base)
    this.options = options
    // a notification may be lost across a reconnection or a new session: own records are read back again after one
    this.client.onEvent(() => {
      for (const binding of this.bindings.values()) binding.forget()
    })
  }

  async ping(): Promise<void> {
    await this.client.run(`exists ${this.layout.base}`, (s) => stat(s, this.layout.base))
  }

  async write(record: OwnedRecord): Promise<Binding> {
    await this.client.useSessionTimeout(record.ttlMs, this.bindings.size === 0)
    const path = recordPath(this.layout, record)
    const session = await this.client.run(`register ${path}`, async (s) => {
      await createNode(s, this.layout, record)
      return s
    })
    const key = recordKey(record.instance)
    const binding = new ZkBinding(this.client, session, record, path, (b) => {
      // a re-created record's new binding replaces the old one, which is released after it
      if (this.bindings.get(key) === b) this.bindings.delete(key)
    })
    this.bindings.set(key, binding)
    return binding
  }

  async rewrite(record: OwnedRecord, binding: Binding): Promise<void> {
    if (!(binding instanceof ZkBinding)) throw new BugError('the ZooKeeper driver was given a binding of another')
    const {session, path} = binding
    // a record of a session that ended comes back through the core's write, with the current content
    if (session.dead) return
    await this.client.run(
      `update ${path}`,
      async (s) => {
        const bytes = encodePayload(record.instance, record.owner)
        if (!(await setData(s, path, bytes))) await createNode(s, this.layout, record)
      },
      session,
    )
  }

  async read(service: string, id: string): Promise<ReadResult | undefined> {
    const found = await this.client.run(`read ${service} ${id}`, (s) => this.find(s, service, id))
    return found?.record
  }

  async readMany(keys: readonly RecordKey[]): Promise<Map<string, ReadResult>> {
    const found = new Map<string, ReadResult>()
    // own records are read by their znode (not even that while its data watch has not fired); the others through
    // their service's listing, once per service
    const own: Array<{key: string; binding: ZkBinding}> = []
    const others = new Map<string, Set<string>>()
    for (const k of keys) {
      const key = recordKey(k)
      const binding = this.bindings.get(key)
      if (binding) own.push({key, binding})
      else others.set(k.service, (others.get(k.service) ?? new Set()).add(k.id))
    }

    await this.client.run(`read ${keys.length} records`, async (s) => {
      const missed = await pipelined(own, async ({key, binding}) => {
        // read under a data watch that has not fired since: the znode is as it was, no request is made
        const record = binding.confirmedOn(s) ?? (await binding.readBack(s, this.layout))
        if (record && !isSkipped(record) && record.instance.id === binding.id) found.set(key, record)
        else return binding
        return undefined
      })
      // a znode that moved (another address under the same id) is looked up in its service's listing
      for (const binding of missed) {
        if (binding) others.set(binding.service, (others.get(binding.service) ?? new Set()).add(binding.id))
      }

      await pipelined([...others], async ([service, ids]) => {
        const nodes = await this.layout.readService(s, service)
        for (const {record} of nodes) {
          if (!isSkipped(record) && ids.has(record.instance.id)) found.set(recordKey(record.instance), record)
        }

        // as `find`: a znode named after the id (registrator's) answers for an id no payload names
        for (const {child, record} of nodes) {
          const key = recordKey({service, id: child})
          if (ids.has(child) && !found.has(key)) found.set(key, record)
        }
      })
    })
    return found
  }

  async remove(service: string, id: string): Promise<boolean> {
    // a remove whose answer was lost (a member went away) may have been applied: a retry that then finds
    // nothing reports the removal it made, not "not registered"
    let issued = false
    return this.client.run(`deregister ${service} ${id}`, async (s) => {
      const target = await this.find(s, service, id)
      if (!target) return issued
      issued = true
      const path = this.layout.nodePath(service, target.child)
      const node = await data(s, path)
      if (!node || !(await remove(s, path, node.stat.version))) return false
      await removeIfEmpty(s, this.layout.servicePath(service))
      return true
    })
  }

  async listServices(): Promise<ServiceSummary[]> {
    const {base} = this.layout
    return this.client.run(`list ${base}`, async (s) => {
      const names = (await children(s, base)) ?? []
      const summaries = await pipelined(
        names,
        async (name): Promise<ServiceSummary> => {
          // the core skips a name it cannot use with one warning; its znodes are not read
          if (this.layout.checkService(name)) return {name, instances: 0, passing: 0}
          const records = (await this.layout.readService(s, name)).map((n) => n.record)
          // the core sees summaries only: the records it cannot read are reported here, under its rule
          const instances = foreignRecords(this.options.log)
            .select(records)
            .map((r) => r.instance)
          return {name, instances: instances.length, passing: instances.filter((i) => i.health === 'passing').length}
        },
        // each service's listing pipelines its own reads
        16,
      )
      const shown = summaries.filter((summary) => summary.instances > 0 || this.layout.checkService(summary.name))
      return shown.sort((a, b) => a.name.localeCompare(b.name))
    })
  }

  async listRecords(service: string): Promise<ReadResult[]> {
    const path = this.layout.servicePath(service)
    const nodes = await this.client.run(`list ${path}`, (s) => this.layout.readService(s, service))
    return nodes.map((n) => n.record)
  }

  watch(service: string | undefined, sink: DriverWatchSink): () => void {
    return new WatchLoop(this.client, this.layout, service, sink).start()
  }

  cluster(): Promise<ClusterInfo> {
    return describeEnsemble(this.client.hosts, this.options.requestTimeoutMs)
  }

  onEvent(listener: (event: DriverEvent) => void): () => void {
    return this.client.onEvent(listener)
  }

  async close(): Promise<void> {
    this.bindings.clear()
    await this.client.close()
  }

  /** The znode of a record by its id, or by its name (registrator's znodes are named after their address). */
  private async find(s: Session, service: string, id: string) {
    // a record this driver wrote is read directly: presence checks then cost one read, not one per instance
    const mine = this.bindings.get(recordKey({service, id}))
    if (mine) {
      const record = await this.layout.readNode(s, service, mine.child)
      if (record && !isSkipped(record) && record.instance.id === id) return {child: mine.child, record}
    }

    const nodes = await this.layout.readService(s, service)
    return (
      nodes.find(({record}) => !isSkipped(record) && record.instance.id === id) ?? nodes.find((n) => n.child === id)
    )
  }
}
