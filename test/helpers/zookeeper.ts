import zookeeper, {type ACL, type Client} from 'node-zookeeper-client'

import {registryOver} from '../../src/lib/registry/index.js'
import {type BackendOptions, withDefaults} from '../../src/lib/registry/options.js'
import type {Credentials} from '../../src/lib/registry/spec.js'
import type {Registry} from '../../src/lib/registry/types.js'
import {createDriver, type ZkSpec} from '../../src/lib/registry/zookeeper/index.js'

/**
 * A plain node-zookeeper-client connected to `hosts` (h:p,h:p), to look at and write znodes the way other tools
 * (or a client without the password) do; digest credentials when `auth` is given.
 */
export async function rawZkClient(
  hosts: string,
  auth?: Credentials,
  options: Record<string, unknown> = {},
): Promise<Client> {
  const client = zookeeper.createClient(hosts, {sessionTimeout: 10_000, ...options})
  if (auth) client.addAuthInfo('digest', Buffer.from(`${auth.user}:${auth.password}`))
  await new Promise<void>((resolve, reject) => {
    // a member may be stopped by another test meanwhile: the library tries it for a third of the session timeout
    const timer = setTimeout(() => reject(new Error('raw client: no connection')), 20_000)
    client.once('connected', () => {
      clearTimeout(timer)
      resolve()
    })
    client.connect()
  })
  return client
}

/** A node-zookeeper-client call as a promise. */
export function zk<T>(invoke: (cb: (error: unknown, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    invoke((error, value) => (error ? reject(error) : resolve(value)))
  })
}

export const getData = (c: Client, path: string): Promise<Buffer> =>
  zk((cb) => c.getData(path, (e, data) => cb(e, data)))
export const getAcl = (c: Client, path: string): Promise<ACL[]> => zk((cb) => c.getACL(path, (e, acls) => cb(e, acls)))
export const remove = (c: Client, path: string): Promise<void> => zk((cb) => c.remove(path, (e) => cb(e, undefined)))
export const exists = (c: Client, path: string): Promise<boolean> =>
  zk<boolean>((cb) => c.exists(path, (e, stat) => cb(e, Boolean(stat))))
/** The session that owns an ephemeral znode, as hex ('' when the znode is gone). */
export const ownerOf = (c: Client, path: string): Promise<string> =>
  zk((cb) => c.exists(path, (e, stat) => cb(e, stat ? stat.ephemeralOwner.toString('hex') : '')))
export const mkdirp = (c: Client, path: string): Promise<string> => zk((cb) => c.mkdirp(path, (e, p) => cb(e, p)))
export const create = (
  c: Client,
  path: string,
  data: string,
  mode = zookeeper.CreateMode.PERSISTENT,
): Promise<string> => zk((cb) => c.create(path, Buffer.from(data), mode, (e, p) => cb(e, p)))

/** A registry on the ZooKeeper driver, as openRegistry makes it, with its diagnostics collected. */
export function openZk(
  spec: ZkSpec,
  options: Partial<BackendOptions> = {},
): {registry: Registry; logs: string[]; session: () => {id: Buffer; password: Buffer}} {
  const logs: string[] = []
  const opts = withDefaults({log: (m) => logs.push(m), ...options})
  const driver = createDriver(spec, opts)
  const registry = registryOver(driver, opts)
  return {registry, logs, session: () => sessionOf(driver)}
}

/** The driver's current session, to steal it the way ZooKeeper's own tests expire one. */
function sessionOf(driver: unknown): {id: Buffer; password: Buffer} {
  const session = (driver as {client: {current?: {client: Client}}}).client.current
  if (!session) throw new Error('no session yet')
  return {id: session.client.getSessionId(), password: session.client.getSessionPassword()}
}
