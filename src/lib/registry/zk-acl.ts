import {UserError} from '../errors.js'

/** One ZooKeeper ACL entry as zkCli writes it: `scheme:id:perms`, perms a subset of `cdrwa`. */
export interface ZkAclEntry {
  scheme: string
  id: string
  perms: string
}

export type ZkAclSpec = ZkAclEntry[]

/** ZooKeeper's predefined ACLs (ZooDefs.Ids), by short name; `auth::` is the authenticated user. */
const NAMED: Record<string, ZkAclEntry[]> = {
  open: [{scheme: 'world', id: 'anyone', perms: 'cdrwa'}],
  'creator-all': [{scheme: 'auth', id: '', perms: 'cdrwa'}],
  read: [{scheme: 'world', id: 'anyone', perms: 'r'}],
}

export const ZK_ACL_HELP =
  'comma-separated scheme:id:perms entries as zkCli writes them (world:anyone:r, digest:USER:HASH:cdrwa, ' +
  'ip:10.0.0.0/8:r, auth::cdrwa) or named ACLs: open (world:anyone:cdrwa), creator-all (the --zk-auth user: cdrwa), ' +
  'read (world:anyone:r); default creator-all,read with --zk-auth, else open'

const HINT = 'write e.g. creator-all,read or world:anyone:r,digest:USER:HASH:cdrwa'

/** Parses `--zk-acl`; `auth` entries need credentials, since ZooKeeper rejects them on an unauthenticated session. */
export function parseZkAcl(text: string, hasAuth: boolean): ZkAclSpec {
  const entries: ZkAclEntry[] = []
  for (const part of text.split(',')) {
    const item = part.trim()
    if (item === '') continue
    const name = item.toLowerCase()
    // own keys only: "__proto__" is no ACL name
    const named = Object.hasOwn(NAMED, name) ? NAMED[name] : undefined
    if (named) {
      entries.push(...named)
      continue
    }

    const first = item.indexOf(':')
    const last = item.lastIndexOf(':')
    if (first === -1 || first === last) throw new UserError(`--zk-acl entry "${item}" is not scheme:id:perms`, HINT)
    const scheme = item.slice(0, first).toLowerCase()
    const id = item.slice(first + 1, last)
    const perms = item.slice(last + 1).toLowerCase()
    if (!/^[a-z][\w-]*$/.test(scheme)) throw new UserError(`--zk-acl entry "${item}" has no scheme`, HINT)
    if (!/^[cdrwa]+$/.test(perms) || new Set(perms).size !== perms.length) {
      throw new UserError(`--zk-acl entry "${item}" has bad permissions "${perms}"`, 'use letters of cdrwa')
    }

    if (scheme === 'world' && id !== 'anyone')
      throw new UserError(`--zk-acl entry "${item}": the world scheme's only id is anyone`, HINT)
    entries.push({scheme, id, perms})
  }

  if (entries.length === 0) throw new UserError('--zk-acl names no entry', HINT)
  if (!hasAuth && entries.some((e) => e.scheme === 'auth')) {
    throw new UserError('--zk-acl creator-all (auth::) needs credentials', 'pass --zk-auth user:password')
  }

  return entries
}

/** The ACL svc gives its znodes: --zk-acl, else creator-all,read with credentials, else open (today's default). */
export function effectiveZkAcl(acl: ZkAclSpec | undefined, hasAuth: boolean): ZkAclSpec {
  return acl ?? parseZkAcl(hasAuth ? 'creator-all,read' : 'open', hasAuth)
}
