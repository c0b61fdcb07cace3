import type {AgentEvent} from '../docker/types.js'
import {errorMessage, UserError} from '../errors.js'
import {EtcdConnection} from '../registry/etcd/client.js'
import {instanceKey} from '../registry/etcd/records.js'
import {type BackendOptions, withDefaults} from '../registry/options.js'
import type {BackendSpec} from '../registry/spec.js'
import type {ServiceInstance} from '../registry/types.js'

// short TTL: a resolver must not cache an instance long after its container went
export const SKYDNS_DEFAULTS = {prefix: '/skydns', domain: 'skydns.local', ttlSeconds: 10} as const

export interface SkyDnsOptions {
  /** The etcd path CoreDNS's etcd plugin reads (its `path`), default /skydns. */
  prefix: string
  /** The zone the records are under (CoreDNS's etcd plugin zone), default skydns.local. */
  domain: string
  log(line: string): void
}

/** What CoreDNS's etcd plugin reads at each key: the SkyDNS service record. */
export interface SkyDnsRecord {
  host: string
  port: number
  ttl: number
}

/** A DNS label made of a service name or an instance id: lower case, characters other than a-z 0-9 - become -. */
export function skydnsLabel(text: string): string {
  return text.toLowerCase().replaceAll(/[^a-z\d-]/g, '-')
}

/** `/skydns/local/skydns/<service>/<id>`: the domain's labels reversed, then the service, then the instance. */
export function skydnsKey(opts: Pick<SkyDnsOptions, 'domain' | 'prefix'>, service: string, id: string): string {
  const reversed = opts.domain.toLowerCase().split('.').filter(Boolean).reverse()
  return [opts.prefix.replace(/\/+$/, ''), ...reversed, skydnsLabel(service), skydnsLabel(id)].join('/')
}

/**
 * Writes the SkyDNS layout beside the agent's etcd records: each key on the lease of the instance's own record, so
 * it goes when the instance's lease goes (the agent killed, the lease lost); removed with the instance, and while it
 * is critical. One etcd client of its own, on the registry's spec; writes are made one at a time, in event order.
 */
export class SkyDnsWriter {
  private readonly connection: EtcdConnection
  private readonly instances = new Map<string, ServiceInstance>()
  private queue = Promise.resolve()

  constructor(
    spec: BackendSpec,
    backend: BackendOptions,
    private readonly opts: SkyDnsOptions,
  ) {
    if (spec.kind !== 'etcd') {
      throw new UserError(
        '--skydns needs an etcd backend',
        'add --backend etcd (or an etcd:// URI), or leave --skydns out',
      )
    }

    this.connection = new EtcdConnection(spec, backend)
  }

  /** Follows the agent's events: registered, health changes, deregistered, and a restored lease (a new one). */
  follow(on: (listener: (event: AgentEvent) => void) => () => void): () => void {
    return on((event) => {
      switch (event.type) {
        case 'registered': {
          this.instances.set(recordId(event.instance), event.instance)
          this.enqueue(() => this.put(event.instance))
          break
        }

        case 'health': {
          const instance = this.instances.get(recordId(event))
          if (!instance) break
          instance.health = event.health
          this.enqueue(() => (event.health === 'critical' ? this.remove(instance) : this.put(instance)))
          break
        }

        case 'deregistered': {
          const instance = this.instances.get(recordId(event))
          this.instances.delete(recordId(event))
          if (instance) this.enqueue(() => this.remove(instance))
          break
        }

        case 'backend': {
          // a restored registration has a new lease: every key moves onto its instance's current one
          if (event.state === 'restored')
            for (const instance of this.instances.values()) this.enqueue(() => this.put(instance))
          break
        }

        default: {
          break
        }
      }
    })
  }

  /** Waits for the writes in flight, then closes the client (the keys stay on their leases). */
  async close(): Promise<void> {
    await this.queue
    this.connection.close()
  }

  private enqueue(write: () => Promise<void>): void {
    this.queue = this.queue.then(write).catch((error: unknown) => this.opts.log(`skydns: ${errorMessage(error)}`))
  }

  private async put(instance: ServiceInstance): Promise<void> {
    if (instance.health === 'critical') return
    const own = instanceKey(this.connection.prefix, instance.service, instance.id)
    const {kvs} = await this.connection.op((client) => client.get(own).exec())
    const lease = kvs[0]?.lease
    // the instance is gone already: its deregistered event follows
    if (lease === undefined) return
    const record: SkyDnsRecord = {host: instance.address, port: instance.port, ttl: SKYDNS_DEFAULTS.ttlSeconds}
    const key = skydnsKey(this.opts, instance.service, instance.id)
    await this.connection.op((client) => {
      const put = client.put(key).value(JSON.stringify(record))
      return (lease === '0' ? put : put.lease(lease)).exec()
    })
  }

  private async remove(instance: ServiceInstance): Promise<void> {
    const key = skydnsKey(this.opts, instance.service, instance.id)
    await this.connection.op((client) => client.delete().key(key).exec())
  }
}

/** The writer for `svc agent --skydns`, on the agent's own backend spec. */
export function openSkyDns(
  settings: {spec: BackendSpec; prefix: string; domain: string},
  log: (line: string) => void,
): SkyDnsWriter {
  return new SkyDnsWriter(settings.spec, withDefaults({log}), {prefix: settings.prefix, domain: settings.domain, log})
}

function recordId(instance: {service: string; id: string}): string {
  return `${instance.service}\n${instance.id}`
}
