import Consul from 'consul'
import {Agent as HttpAgent} from 'node:http'
import {Agent as HttpsAgent} from 'node:https'

import {type BackendSpec, formatHosts, type HostPort} from '../spec.js'
import {ConsulError} from './errors.js'
import {readTlsFiles} from './security.js'

export type ConsulSpec = Extract<BackendSpec, {kind: 'consul'}>

/**
 * Which client (keep-alive pool) a request goes through, and its sockets per agent, well inside an agent's
 * per-client budget (http_max_conns_per_client, 200): `shared`, every request by default; `watch`, the watch of
 * everything (its two blocking queries and one socket for its reads); `own`, unbounded, the one blocking query
 * of each single-service watch, which would otherwise hold a pooled socket for its whole wait.
 */
export const LANE_SOCKETS = {shared: 16, watch: 3, own: Number.POSITIVE_INFINITY} as const
export type Lane = keyof typeof LANE_SOCKETS

/** One consul-package client per agent address, made on first use, with the token and TLS settings of the spec. */
export class AgentClients {
  readonly hosts: readonly HostPort[]
  readonly token?: string
  private readonly https: boolean
  private readonly tls: {ca?: Buffer; cert?: Buffer; key?: Buffer}
  private readonly clients: Record<Lane, Array<Consul | undefined>>

  constructor(spec: ConsulSpec) {
    this.hosts = spec.hosts.map((h) => ({...h}))
    this.token = spec.token
    this.https = spec.https ?? false
    this.tls = this.https ? readTlsFiles(spec.tls ?? {}) : {}
    this.clients = {shared: [], watch: [], own: []}
  }

  name(index: number): string {
    return formatHosts([this.host(index)])
  }

  get(index: number, lane: Lane = 'shared'): Consul {
    const clients = this.clients[lane]
    let client = clients[index]
    if (!client) {
      const {host, port} = this.host(index)
      const maxSockets = LANE_SOCKETS[lane]
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
    for (const client of Object.values(this.clients).flat()) client?.destroy()
  }

  private host(index: number): HostPort {
    const host = this.hosts[index]
    if (!host) throw new ConsulError(`no consul agent #${index}`, {transient: false})
    return host
  }
}
