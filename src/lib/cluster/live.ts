import {listeningSockets, listensFor, socketHolders} from '../procnet.js'
import {memberMarker} from './driver.js'
import {ownsProcess} from './process.js'
import {CLUSTER_HOST, type ClusterManifest, type MemberManifest} from './types.js'

/**
 * Each member's live processes, by member index: the manifest's pid while it is the member's, and every process
 * listening on one of the member's ports with the member's folder on its command line, so a member restarted by
 * hand (whose pid the manifest does not know) is found too. A process of someone else on a member's port is not.
 */
export function memberProcesses(manifest: ClusterManifest): Map<number, number[]> {
  const sockets = listeningSockets()
  const inodesOf = (member: MemberManifest): Set<number> =>
    new Set(
      Object.values(member.ports).flatMap((port) =>
        sockets.flatMap((s) => (listensFor(s, CLUSTER_HOST, port) ? [s.inode] : [])),
      ),
    )
  const inodes = new Map(manifest.members.map((m) => [m.index, inodesOf(m)]))
  const holders = socketHolders(new Set([...inodes.values()].flatMap((set) => [...set])))
  const found = new Map<number, number[]>()
  for (const member of manifest.members) {
    const marker = memberMarker(member)
    const pids = new Set<number>()
    if (ownsProcess(member.pid, marker)) pids.add(member.pid)
    for (const inode of inodes.get(member.index) ?? []) {
      for (const pid of holders.get(inode) ?? []) if (ownsProcess(pid, marker)) pids.add(pid)
    }

    if (pids.size > 0)
      found.set(
        member.index,
        [...pids].sort((a, b) => a - b),
      )
  }

  return found
}
