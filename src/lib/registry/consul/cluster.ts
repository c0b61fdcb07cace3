import {formatHosts} from '../spec.js'
import type {ClusterInfo, ClusterMember, MemberRole} from '../types.js'
import type {Agents} from './agents.js'
import type {Catalog} from './catalog.js'

interface AgentMember {
  Name: string
  Addr: string
  Port: number
  Tags?: Record<string, string>
  Status: number
}

const SERF_ALIVE = 1

/**
 * The Consul servers (serf members tagged role=consul) with their raft roles, named by the HTTP address svc
 * talks to where svc knows it, else by their server RPC address.
 */
export async function describeCluster(agents: Agents, catalog: Catalog): Promise<ClusterInfo> {
  const [members, peers, leader, nodes] = await Promise.all([
    agents.read((c, x) => c.agent.members({...x})),
    agents.read((c, x) => c.status.peers({...x})),
    agents.read((c, x) => c.status.leader({...x})),
    catalog.agentsByNode(true),
  ])
  const peerSet = new Set(Array.isArray(peers.value) ? peers.value.map(String) : [])
  const leaderAddress = typeof leader.value === 'string' && leader.value !== '' ? leader.value : undefined
  const servers = (Array.isArray(members.value) ? (members.value as AgentMember[]) : []).filter(
    (m) => m.Tags?.role === 'consul',
  )
  // node name → index of the agent: learnt now or earlier from /v1/agent/self
  const hostOf = new Map<string, number>()
  for (const [index, name] of catalog.nodeNames) hostOf.set(name, index)
  // an agent that never answered: when exactly one server and one address are left over, they are the same
  const unmatchedHosts = Array.from({length: agents.count}, (_, i) => i).filter((i) => !catalog.nodeNames.has(i))
  const unmatchedServers = servers.filter((m) => !hostOf.has(m.Name))
  if (unmatchedHosts.length === 1 && unmatchedServers.length === 1) {
    hostOf.set(unmatchedServers[0]!.Name, unmatchedHosts[0]!)
  }

  const result: ClusterMember[] = []
  const seen = new Set<string>()
  for (const member of servers) {
    const rpc = formatHosts([{host: member.Addr, port: Number(member.Tags?.port ?? member.Port)}])
    seen.add(rpc)
    const role: MemberRole = rpc === leaderAddress ? 'leader' : peerSet.has(rpc) ? 'follower' : 'unknown'
    const index = hostOf.get(member.Name)
    // serf's view and, for the agents svc talks to, whether they answer svc right now
    const reachable = member.Status === SERF_ALIVE && (index === undefined || nodes.get(member.Name) === index)
    result.push({name: member.Name, address: index === undefined ? rpc : agents.name(index), role, reachable})
  }

  for (const rpc of peerSet) {
    if (!seen.has(rpc))
      result.push({name: rpc, address: rpc, role: rpc === leaderAddress ? 'leader' : 'follower', reachable: false})
  }

  result.sort((a, b) => a.name.localeCompare(b.name))
  const leaderMember = result.find((m) => m.role === 'leader')
  return leaderMember
    ? {backend: 'consul', members: result, leader: leaderMember.address}
    : {backend: 'consul', members: result}
}
