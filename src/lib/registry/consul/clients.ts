import Consul from 'consul'
import {Agent as HttpsAgent} from 'node:https'

import {type BackendSpec, formatHosts, type HostPort} from '../spec.js'
import {ConsulError} from './errors.js'
import {readTlsFiles} from './security.js'

export type ConsulSpec = Extract<BackendSpec, {kind: 'consul'}>

/** One consul-package client per agent address, made on first use, with the token and TLS settings of the spec. */
export class AgentClients {
  readonly hosts: readonly HostPort[]
  readonly token?: string
  private readonly https: boolean
  private readonly tls: {ca?: Buffer; cert?: Buffer; key?: Buffer}
  private readonly clients: Array<Consul | undefined>

  constructor(spec: ConsulSpec) {
    this.hosts = spec.hosts.map((h) => ({...h}))
    this.token = spec.token
    this.https = spec.https ?? false
    this.tls = this.https ? readTlsFiles(spec.tls ?? {}) : {}
    this.clients = this.hosts.map(() => undefined)
  }

  name(index: number): string {
    return formatHosts([this.host(index)])
  }

  get(index: number): Consul {
    let client = this.clients[index]
    if (!client) {
      const {host, port} = this.host(index)
      // the token travels as the X-Consul-Token header of every request (the consul package's `defaults`)
      client = new Consul({
        host: host.includes(':') ? `[${host}]` : host,
        port,
        ...(this.https ? {secure: true, agent: new HttpsAgent({keepAlive: true, ...this.tls})} : {}),
        ...(this.token ? {defaults: {token: this.token}} : {}),
      })
      this.clients[index] = client
    }

    return client
  }

  destroy(): void {
    for (const client of this.clients) client?.destroy()
  }

  private host(index: number): HostPort {
    const host = this.hosts[index]
    if (!host) throw new ConsulError(`no consul agent #${index}`, {transient: false})
    return host
  }
}
