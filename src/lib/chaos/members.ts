import {parseEtcdStatus} from '../cluster/etcd.js'
import {describeError, httpJson, tcpCommand} from '../cluster/probe.js'
import {parseSrvr} from '../cluster/zookeeper.js'
import {UserError} from '../errors.js'
import {isRecord} from '../guards.js'
import type {BackendSpec, HostPort} from '../registry/spec.js'
import type {MemberRole} from '../registry/types.js'

export type ClusterSpec = Exclude<BackendSpec, {kind: 'local'}>

/** One member as the backend's own interfaces describe it, found through a client address given in --backend. */
export interface ObservedMember {
  host: string
  port: number
  /** host:port, the client address. */
  address: string
  /** The backend's name for it (etcd member name, Consul node name), else its address. */
  name: string
  up: boolean
  role: MemberRole
  /** Its id in the backend's terms: etcd member id, Consul raft address; ZooKeeper has none. */
  selfId?: string
  /** The leader it follows, in the same terms. */
  leaderId?: string
  /** How far its log goes: ZooKeeper zxid, etcd raft index, Consul applied index. */
  logIndex?: bigint
  detail?: string
}

export interface Observation {
  /** When the answers were in (ms since the epoch). */
  at: number
  members: ObservedMember[]
  /** The member that a majority of the members agree leads, if any. */
  leader?: ObservedMember
}

const joinHostPort = (host: string, port: number): string =>
  host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`

/** How to name a member in messages: `name (address)`, or the address alone when it has no other name. */
export function memberLabel(m: {name: string; address: string}): string {
  return m.name === m.address ? m.address : `${m.name} (${m.address})`
}

/** `srvr`'s Zxid line (hex) as a number. */
export function parseZxid(text: string): bigint | undefined {
  const hex = /^Zxid:\s*0x([\da-f]+)/im.exec(text)?.[1]
  return hex === undefined ? undefined : BigInt(`0x${hex}`)
}

const NOT_WHITELISTED = /not in the whitelist|not executed because/i

/** What `srvr` says about one ZooKeeper member. */
export function zkMemberFromSrvr(host: HostPort, text: string): ObservedMember {
  const probe = parseSrvr(text)
  const member: ObservedMember = {
    host: host.host,
    port: host.port,
    address: joinHostPort(host.host, host.port),
    name: joinHostPort(host.host, host.port),
    up: probe.up,
    role: probe.up ? (probe.role ?? 'unknown') : 'unknown',
  }
  const zxid = parseZxid(text)
  if (zxid !== undefined) member.logIndex = zxid
  if (NOT_WHITELISTED.test(text)) member.detail = 'srvr is not whitelisted (4lw.commands.whitelist)'
  else if (probe.detail) member.detail = probe.detail
  return member
}

async function probeZk(host: HostPort, timeoutMs: number): Promise<ObservedMember> {
  try {
    return zkMemberFromSrvr(host, await tcpCommand(host.host, host.port, 'srvr', timeoutMs))
  } catch (error) {
    return down(host, describeError(error))
  }
}

function down(host: HostPort, detail: string): ObservedMember {
  const address = joinHostPort(host.host, host.port)
  return {host: host.host, port: host.port, address, name: address, up: false, role: 'unknown', detail}
}

async function probeEtcd(host: HostPort, timeoutMs: number, names: Map<string, string>): Promise<ObservedMember> {
  try {
    const body = await httpJson(host.host, host.port, 'POST', '/v3/maintenance/status', timeoutMs, '{}')
    const probe = parseEtcdStatus(body)
    const member: ObservedMember = {...down(host, ''), up: true, role: 'unknown'}
    delete member.detail
    if (probe.selfId) {
      member.selfId = probe.selfId
      member.name = names.get(probe.selfId) ?? member.name
    }

    if (probe.leaderId) {
      member.leaderId = probe.leaderId
      member.role = probe.leaderId === probe.selfId ? 'leader' : 'follower'
    } else member.detail = 'no leader'
    if (isRecord(body) && typeof body.raftIndex === 'string') member.logIndex = BigInt(body.raftIndex)
    return member
  } catch (error) {
    return down(host, describeError(error))
  }
}

/** etcd's member list: id to name, from the first member that answers. */
async function etcdNames(hosts: readonly HostPort[], timeoutMs: number): Promise<Map<string, string>> {
  const names = new Map<string, string>()
  for (const host of hosts) {
    try {
      const body = await httpJson(host.host, host.port, 'POST', '/v3/cluster/member/list', timeoutMs, '{}')
      const members = isRecord(body) && Array.isArray(body.members) ? body.members.filter((m) => isRecord(m)) : []
      for (const m of members) if (typeof m.ID === 'string' && typeof m.name === 'string') names.set(m.ID, m.name)
      if (members.length > 0) return names
    } catch {
      // the next one
    }
  }

  return names
}

/** Consul: /v1/agent/self names the member (node, raft address, applied index); /v1/status/leader its leader. */
async function probeConsul(host: HostPort, timeoutMs: number, peers: ReadonlySet<string>): Promise<ObservedMember> {
  try {
    const [self, leader] = await Promise.all([
      httpJson(host.host, host.port, 'GET', '/v1/agent/self', timeoutMs),
      httpJson(host.host, host.port, 'GET', '/v1/status/leader', timeoutMs),
    ])
    const member: ObservedMember = {...down(host, ''), up: true, role: 'unknown'}
    delete member.detail
    if (isRecord(self)) {
      const config = isRecord(self.Config) ? self.Config : {}
      const agent = isRecord(self.Member) ? self.Member : {}
      const tags = isRecord(agent.Tags) ? agent.Tags : {}
      if (typeof config.NodeName === 'string') member.name = config.NodeName
      if (typeof agent.Addr === 'string' && typeof tags.port === 'string')
        member.selfId = joinHostPort(agent.Addr, Number(tags.port))
      const stats = isRecord(self.Stats) && isRecord(self.Stats.raft) ? self.Stats.raft : {}
      if (typeof stats.applied_index === 'string' && /^\d+$/.test(stats.applied_index))
        member.logIndex = BigInt(stats.applied_index)
    }

    if (typeof leader === 'string' && leader !== '') {
      member.leaderId = leader
      if (leader === member.selfId) member.role = 'leader'
      else if (peers.size === 0 || (member.selfId !== undefined && peers.has(member.selfId))) member.role = 'follower'
      else member.detail = 'not a raft peer'
    } else member.detail = 'no leader'
    return member
  } catch (error) {
    return down(host, describeError(error))
  }
}

/** Consul's raft peers (/v1/status/peers), from the first agent that answers. */
async function consulPeers(hosts: readonly HostPort[], timeoutMs: number): Promise<Set<string>> {
  for (const host of hosts) {
    try {
      const peers = await httpJson(host.host, host.port, 'GET', '/v1/status/peers', timeoutMs)
      if (Array.isArray(peers) && peers.length > 0) return new Set(peers.map(String))
    } catch {
      // the next one
    }
  }

  return new Set()
}

/** The leader a majority of the members agree on (ZooKeeper: the one member in Mode leader, a majority serving). */
export function agreedLeader(members: readonly ObservedMember[]): ObservedMember | undefined {
  const quorum = Math.floor(members.length / 2) + 1
  const up = members.filter((m) => m.up)
  const leaders = up.filter((m) => m.role === 'leader' || m.role === 'standalone')
  if (leaders.length !== 1) return undefined
  const leader = leaders[0] as ObservedMember
  const following = up.filter((m) => {
    if (m === leader) return true
    if (m.role !== 'follower') return false
    return m.leaderId === undefined || m.leaderId === leader.selfId
  })
  return following.length >= quorum ? leader : undefined
}

/** Asks every member in the spec, once, bounded by `timeoutMs`. */
export async function observeCluster(spec: ClusterSpec, timeoutMs = 1000): Promise<Observation> {
  // when the last member that answered did: a frozen member's timeout does not delay what the others said
  let answeredAt = 0
  const timed = async (probe: Promise<ObservedMember>): Promise<ObservedMember> => {
    const member = await probe
    if (member.up) answeredAt = Math.max(answeredAt, Date.now())
    return member
  }

  let members: ObservedMember[]
  switch (spec.kind) {
    case 'zk': {
      members = await Promise.all(spec.hosts.map((h) => timed(probeZk(h, timeoutMs))))
      break
    }

    case 'etcd': {
      const names = await etcdNames(spec.hosts, timeoutMs)
      members = await Promise.all(spec.hosts.map((h) => timed(probeEtcd(h, timeoutMs, names))))
      break
    }

    case 'consul': {
      const peers = await consulPeers(spec.hosts, timeoutMs)
      members = await Promise.all(spec.hosts.map((h) => timed(probeConsul(h, timeoutMs, peers))))
      break
    }
  }

  const observation: Observation = {at: answeredAt || Date.now(), members}
  const leader = agreedLeader(members)
  if (leader) observation.leader = leader
  return observation
}

/** The members and their leader before a drill; a one-line error when there is no leader to kill. */
export async function discoverLeader(
  spec: ClusterSpec,
  timeoutMs = 2000,
): Promise<Observation & {leader: ObservedMember}> {
  const observation = await observeCluster(spec, timeoutMs)
  const answering = observation.members.filter((m) => m.up)
  const where = observation.members.map((m) => m.address).join(',')
  if (spec.kind === 'zk' && observation.members.some((m) => m.detail?.includes('whitelist'))) {
    throw new UserError(
      `ZooKeeper at ${where} refuses the srvr command`,
      'whitelist it in zoo.cfg: 4lw.commands.whitelist=srvr,mntr,ruok',
    )
  }

  if (answering.length === 0) {
    throw new UserError(
      `no ${spec.kind} member answers at ${where} (${observation.members[0]?.detail ?? 'no answer'})`,
      'check that the servers run and that --backend names every member',
    )
  }

  if (!observation.leader) {
    const seen = observation.members.map((m) => `${m.name} ${m.up ? m.role : 'down'}`).join(', ')
    throw new UserError(
      `the members at ${where} do not agree on a leader (${seen})`,
      'wait until the cluster has elected one, and name every member in --backend',
    )
  }

  return {...observation, leader: observation.leader}
}
