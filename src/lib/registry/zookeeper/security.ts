import {createHash} from 'node:crypto'
import zookeeper, {type ACL} from 'node-zookeeper-client'

import type {Credentials} from '../spec.js'
import type {ZkAclSpec} from '../zk-acl.js'

const PERMISSIONS: Record<string, number> = {
  c: zookeeper.Permission.CREATE,
  d: zookeeper.Permission.DELETE,
  r: zookeeper.Permission.READ,
  w: zookeeper.Permission.WRITE,
  a: zookeeper.Permission.ADMIN,
}

/** ZooKeeper ACL entries; `auth::` becomes the digest id of the credentials, as the server would make it. */
export function toAcl(spec: ZkAclSpec, auth: Credentials | undefined): ACL[] {
  return spec.map((entry) => {
    // the permission constants are distinct bits, so their sum is their union
    const perms = [...new Set(entry.perms)].reduce((sum, letter) => sum + (PERMISSIONS[letter] ?? 0), 0)
    const id =
      entry.scheme === 'auth' && auth
        ? new zookeeper.Id('digest', digestId(auth))
        : new zookeeper.Id(entry.scheme, entry.id)
    return new zookeeper.ACL(perms, id)
  })
}

/** `user:base64(sha1(user:password))`, the id ZooKeeper's digest scheme gives an authenticated user. */
export function digestId(auth: Credentials): string {
  const hash = createHash('sha1').update(`${auth.user}:${auth.password}`).digest('base64')
  return `${auth.user}:${hash}`
}

/** The digest credentials a session sends on every (re)connection. */
export function authInfo(auth: Credentials): Buffer {
  return Buffer.from(`${auth.user}:${auth.password}`)
}
