import zookeeper, {type Event, type Stat} from 'node-zookeeper-client'

import {codeOf} from './errors.js'
import type {Session} from './session.js'

export type Watcher = (event: Event) => void
export interface Znode {
  data: Buffer | undefined
  stat: Stat
}

const {Exception} = zookeeper

/** NO_NODE as undefined, for reads of znodes that may be gone. */
function absent(error: unknown): undefined {
  if (codeOf(error) === Exception.NO_NODE) return undefined
  throw error
}

/** The children of `path`, undefined when it does not exist. */
export function children(s: Session, path: string, watcher?: Watcher): Promise<string[] | undefined> {
  return s
    .call<string[]>((done) => {
      if (watcher) s.client.getChildren(path, watcher, (e, names) => done(e, names))
      else s.client.getChildren(path, (e, names) => done(e, names))
    })
    .catch(absent)
}

/** Data and stat of `path`, undefined when it does not exist. */
export function data(s: Session, path: string, watcher?: Watcher): Promise<Znode | undefined> {
  return s
    .call<Znode>((done) => {
      const cb = (e: Error | zookeeper.Exception | null, bytes: Buffer | null | undefined, stat: Stat): void =>
        done(e, {data: bytes ?? undefined, stat})
      if (watcher) s.client.getData(path, watcher, cb)
      else s.client.getData(path, cb)
    })
    .catch(absent)
}

/** The stat of `path`, undefined when it does not exist; with a watcher, notified when it is created, changed or deleted. */
export async function stat(s: Session, path: string, watcher?: Watcher): Promise<Stat | undefined> {
  const found = await s.call<Stat | null | undefined>((done) => {
    if (watcher) s.client.exists(path, watcher, (e, st) => done(e, st))
    else s.client.exists(path, (e, st) => done(e, st))
  })
  return found ?? undefined
}

/** Creates an ephemeral znode of the session, with the session's ACL. */
export function createEphemeral(s: Session, path: string, bytes: Buffer): Promise<'created' | 'exists' | 'no-parent'> {
  return s
    .call<'created'>((done) => {
      s.client.create(path, bytes, s.acl, zookeeper.CreateMode.EPHEMERAL, (e) => done(e, 'created'))
    })
    .catch((error: unknown) => {
      const code = codeOf(error)
      if (code === Exception.NODE_EXISTS) return 'exists'
      if (code === Exception.NO_NODE) return 'no-parent'
      throw error
    })
}

/**
 * Creates `path` and its missing parents as persistent znodes. Existing ones are skipped before a create is tried:
 * ZooKeeper checks the parent's ACL before it says a node exists, so the library's mkdirp fails under a root that
 * svc may not write even when the base path is there for it.
 */
export async function mkdirp(s: Session, path: string): Promise<void> {
  let prefix = ''
  for (const part of path.split('/').slice(1)) {
    prefix += `/${part}`
    if (await stat(s, prefix)) continue
    const node = prefix
    await s
      .call<string>((done) =>
        s.client.create(node, s.acl, zookeeper.CreateMode.PERSISTENT, (e, created) => done(e, created)),
      )
      .catch((error: unknown) => {
        if (codeOf(error) !== Exception.NODE_EXISTS) throw error
      })
  }
}

/** False when the znode does not exist or changed since `version` was read. */
export async function setData(s: Session, path: string, bytes: Buffer, version = -1): Promise<boolean> {
  try {
    await s.call<Stat>((done) => s.client.setData(path, bytes, version, (e, st) => done(e, st)))
    return true
  } catch (error) {
    const code = codeOf(error)
    if (code === Exception.NO_NODE || code === Exception.BAD_VERSION) return false
    throw error
  }
}

/** False when the znode does not exist or changed since `version` was read. */
export async function remove(s: Session, path: string, version = -1): Promise<boolean> {
  try {
    await s.call<true>((done) => s.client.remove(path, version, (e) => done(e, true)))
    return true
  } catch (error) {
    const code = codeOf(error)
    if (code === Exception.NO_NODE || code === Exception.BAD_VERSION) return false
    throw error
  }
}

/** Removes a service's znode once its last instance is gone, as registrator does. */
export async function removeIfEmpty(s: Session, path: string): Promise<void> {
  try {
    await s.call<true>((done) => s.client.remove(path, -1, (e) => done(e, true)))
  } catch (error) {
    const code = codeOf(error)
    if (code !== Exception.NOT_EMPTY && code !== Exception.NO_NODE) throw error
  }
}
