import {tcpCommand} from '../../net.js'
import type {ClusterInfo, ClusterMember, MemberRole} from '../types.js'

const FOUR_LETTER_TIMEOUT_MS = 2000

/** The ensemble as its members describe themselves in `srvr`; a member that does not answer is unreachable. */
export async function describeEnsemble(hosts: string, requestTimeoutMs: number): Promise<ClusterInfo> {
  const timeout = Math.min(FOUR_LETTER_TIMEOUT_MS, requestTimeoutMs)
  const members = await Promise.all(
    hosts.split(',').map(async (address): Promise<ClusterMember> => {
      const colon = address.lastIndexOf(':')
      const answer = await tcpCommand(address.slice(0, colon), Number(address.slice(colon + 1)), 'srvr', timeout).catch(
        () => '',
      )
      return {name: address, address, role: roleOf(answer), reachable: answer !== ''}
    }),
  )
  const leader = members.find((m) => m.role === 'leader')?.address
  return leader ? {backend: 'zk', members, leader} : {backend: 'zk', members}
}

/** The role in a `srvr` answer ("Mode: leader"); unknown for a member that is not serving. */
function roleOf(answer: string): MemberRole {
  const mode = /^Mode:\s*(\w+)/m.exec(answer)?.[1]
  return mode === 'leader' || mode === 'follower' || mode === 'standalone' ? mode : 'unknown'
}
