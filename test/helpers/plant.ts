import {Etcd3} from 'etcd3'
import {mkdirSync, writeFileSync} from 'node:fs'
import path from 'node:path'

import {instanceFileName} from '../../src/lib/registry/local/files.js'
import {formatHosts, parseBackend} from '../../src/lib/registry/spec.js'
import {consulHttp} from './consul-api.js'
import {create, mkdirp, rawZkClient} from './zookeeper.js'

/** What another tool registered: no owner, and no health (the codec reads it as unknown on every backend). */
export interface PlantedRecord {
  service: string
  id: string
  address: string
  port: number
}

/**
 * Writes a record in the backend's own layout as another tool would, outside svc: a file beside svc's, a
 * registrator-style znode, an etcd value, a Consul service without checks. It lives until deregistered.
 */
export async function plantRecord(uri: string, record: PlantedRecord): Promise<void> {
  const spec = parseBackend(uri)
  const {service, id, address, port} = record
  const fields = {service, id, address, port, tags: [], meta: {}}
  switch (spec.kind) {
    case 'local': {
      const dir = path.join(spec.dir, service)
      mkdirSync(dir, {recursive: true, mode: 0o700})
      const file = path.join(dir, instanceFileName(id))
      writeFileSync(file, JSON.stringify({instance: fields, ttlMs: 600_000}), {mode: 0o600})
      return
    }

    case 'zk': {
      const client = await rawZkClient(formatHosts(spec.hosts))
      try {
        const parent = `${spec.base}/${service}`
        await mkdirp(client, parent)
        const payload = {
          Name: service,
          IP: address,
          PublicPort: port,
          PrivatePort: port,
          ContainerID: '',
          Tags: [],
          Attrs: {},
        }
        await create(client, `${parent}/${address}:${port}`, JSON.stringify({...payload, ...fields}))
      } finally {
        client.close()
      }

      return
    }

    case 'etcd': {
      const client = new Etcd3({hosts: spec.hosts.map((h) => `http://${h.host}:${h.port}`)})
      try {
        await client.put(`${spec.prefix}/${service}/${id}`).value(JSON.stringify(fields))
      } finally {
        client.close()
      }

      return
    }

    case 'consul': {
      const body = {Name: service, ID: id, Address: address, Port: port}
      await consulHttp(spec.hosts[0]!, 'PUT', '/v1/agent/service/register', {body})
    }
  }
}
