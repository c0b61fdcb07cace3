import {readdirSync, readFileSync} from 'node:fs'
import http from 'node:http'

import {Etcd3} from 'etcd3'
import zookeeper from 'node-zookeeper-client'
import {expect} from 'vitest'

import {parseBackend} from '../../src/lib/registry/spec.js'
import type {ServiceInstance} from '../../src/lib/registry/types.js'
import type {TestBackend} from './backends.js'

/** One instance as the backend's own server holds it. */
export interface RawInstance {
  address: string
  port: number
  tags: string[]
}

/** `address:port` of every instance, sorted. */
export const endpoints = (instances: Array<{address: string; port: number}>): string[] =>
  instances.map((i) => `${i.address}:${i.port}`).sort()

/** What the backend's own server holds for a service, read without svc: `address:port` of each instance. */
export async function rawEndpoints(backend: TestBackend, service: string): Promise<string[]> {
  return endpoints(await rawInstances(backend, service))
}

/** The service's instances read without svc: local files, ZooKeeper znodes, etcd keys, Consul's catalog. */
export async function rawInstances(backend: TestBackend, service: string): Promise<RawInstance[]> {
  const spec = parseBackend(backend.uri)
  const raw = (address: string, port: number, tags: string[] | null | undefined): RawInstance => ({
    address,
    port,
    tags: tags ?? [],
  })
  switch (spec.kind) {
    case 'local': {
      const dir = `${spec.dir}/${service}`
      let files: string[]
      try {
        files = readdirSync(dir).filter((f) => f.endsWith('.json') && !f.startsWith('.'))
      } catch {
        return []
      }

      return files.map((f) => {
        const {instance: i} = JSON.parse(readFileSync(`${dir}/${f}`, 'utf8')) as {instance: ServiceInstance}
        return raw(i.address, i.port, i.tags)
      })
    }

    case 'zk': {
      const payloads = await zkPayloads(
        spec.hosts.map((h) => `${h.host}:${h.port}`).join(','),
        `${spec.base}/${service}`,
      )
      return payloads.map((p) => raw(p.IP, p.PublicPort, p.Tags))
    }

    case 'etcd': {
      const client = new Etcd3({hosts: spec.hosts.map((h) => `http://${h.host}:${h.port}`)})
      try {
        const values = await client.getAll().prefix(`${spec.prefix}/${service}/`).strings()
        return Object.values(values).map((v) => {
          const i = JSON.parse(v) as ServiceInstance
          return raw(i.address, i.port, i.tags)
        })
      } finally {
        client.close()
      }
    }

    case 'consul': {
      const body = await httpGet(`http://127.0.0.1:${spec.hosts[0]!.port}/v1/catalog/service/${service}`)
      const entries = JSON.parse(body) as Array<{
        ServiceAddress: string
        ServicePort: number
        ServiceTags: string[] | null
      }>
      return entries.map((e) => raw(e.ServiceAddress, e.ServicePort, e.ServiceTags))
    }
  }
}

interface ZkPayload {
  IP: string
  PublicPort: number
  Tags?: string[]
}

async function zkPayloads(connect: string, base: string): Promise<ZkPayload[]> {
  const client = zookeeper.createClient(connect)
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('zk connect timed out')), 10_000)
      client.once('connected', () => {
        clearTimeout(timer)
        resolve()
      })
      client.connect()
    })
    const children = await new Promise<string[]>((resolve, reject) => {
      client.getChildren(base, (error, names) => {
        if (error && 'getCode' in error && error.getCode() === zookeeper.Exception.NO_NODE) resolve([])
        else if (error) reject(error)
        else resolve(names)
      })
    })
    const payloads = await Promise.all(
      children.map(
        (child) =>
          new Promise<ZkPayload>((resolve, reject) => {
            client.getData(`${base}/${child}`, (error, data) =>
              error ? reject(error) : resolve(JSON.parse(data.toString('utf8')) as ZkPayload),
            )
          }),
      ),
    )
    // the node name is registrator's <ip>:<port>; the payload carries registrator's fields
    for (const [i, p] of payloads.entries()) expect(children[i]).toBe(`${p.IP}:${p.PublicPort}`)
    return payloads
  } finally {
    client.close()
  }
}

function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, {timeout: 5000}, (response) => {
      let body = ''
      response.on('data', (d: Buffer) => {
        body += d.toString()
      })
      response.on('end', () => resolve(body))
    })
    request.on('timeout', () => request.destroy(new Error(`GET ${url} timed out`)))
    request.on('error', reject)
  })
}
