import Consul from 'consul'
import {Agent as HttpAgent} from 'node:http'
import {Agent as HttpsAgent} from 'node:https'

import {type BackendSpec, formatHosts, type HostPort} from '../spec.js'
import {ConsulError} from './errors.js'
import {readTlsFiles} from './security.js'

export type ConsulSpec = Extract<BackendSpec, {kind: 'consul'}>

/**
 * Sockets per agent for the shared lane: the two blocking queries of a watch of everything and one for every other
 * request, so that the process takes little of an agent's per-client budget (http_max_conns_per_client).
 */
export const MAX_SOCKETS = 3

/**
 * Which client a request goes through: `shared` (bounded, every request by default) or `own`, for the one
 * blocking query of a single-service watch, which would otherwise hold a shared socket for its whole wait.
 */
export type Lane = 'own' | 'shared'

/** One consul-package client per agent address, made on first use, with the token and TLS settings of the spec. */
export class AgentClients {
  readonly hosts: readonly HostPort[]
  readonly token?: string
  private readonly https: boolean
  private readonly tls: {ca?: Buffer; cert?: Buffer; key?: Buffer}
  private readonly clients: Array<Consul | undefined>
  private readonly own: Array<Consul | undefined>

  constructor(spec: ConsulSpec) {
    this.hosts = spec.hosts.map((h) => ({...h}))
    this.token = spec.token
    this.https = spec.https ?? false
    this.tls = this.https ? readTlsFiles(spec.tls ?? {}) : {}
    this.clients = this.hosts.map(() => undefined)
    this.own = this.hosts.map(() => undefined)
  }

  name(index: number): string {
    return formatHosts([this.host(index)])
  }

  get(index: number, lane: Lane = 'shared'): Consul {
    const clients = lane === 'shared' ? this.clients : this.own
    let client = clients[index]
    if (!client) {
      const {host, port} = this.host(index)
      const maxSockets = lane === 'shared' ? MAX_SOCKETS : Number.POSITIVE_INFINITY
      // the token travels as the X-Consul-Token header of every request (the consul package's `defaults`)
      client = new Consul({
        host: host.includes(':') ? `[${host}]` : host,
        port,
        ...(this.https
          ? {secure: true, agent: new HttpsAgent({keepAlive: true, maxSockets, ...this.tls})}
          : {agent: new HttpAgent({keepAlive: true, maxSockets})}),
        ...(this.token ? {defaults: {token: this.token}} : {}),
      })
      clients[index] = client
    }

    return client
  }

  destroy(): void {
    for (const client of [...this.clients, ...this.own]) client?.destroy()
  }

  private host(index: number): HostPort {
    const host = this.hosts[index]
    if (!host) throw new ConsulError(`no consul agent #${index}`, {transient: false})
    return host
  }
}
