import http from 'node:http'
import https from 'node:https'

import {isRecord} from '../../guards.js'
import type {ClusterInfo, ClusterMember} from '../types.js'
import type {EtcdConnection} from './client.js'
import {hostOf} from './members.js'

const PROBE_TIMEOUT_MS = 2000

interface StatusAnswer {
  leader: string
}

/** Every member with its client address and role: the leader as most reachable members see it. */
export async function describeCluster(connection: EtcdConnection, secured: boolean): Promise<ClusterInfo> {
  const {members} = await connection.op((client) => client.cluster.memberList({}))
  const timeoutMs = Math.min(PROBE_TIMEOUT_MS, connection.options.connectTimeoutMs)
  const probes = await Promise.all(
    members.map(async (member) => {
      const url = member.clientURLs[0]
      const status = url === undefined ? undefined : await memberStatus(connection, secured, url, timeoutMs)
      return {member, url, status}
    }),
  )
  // a partitioned member may report no leader or a stale one
  const votes = new Map<string, number>()
  for (const {status} of probes) {
    if (status && status.leader !== '0') votes.set(status.leader, (votes.get(status.leader) ?? 0) + 1)
  }

  const leaderId = [...votes.entries()].sort((a, b) => b[1] - a[1])[0]?.[0]
  const result: ClusterMember[] = probes.map(({member, status, url}) => ({
    name: member.name || BigInt(member.ID).toString(16),
    address: url === undefined ? '' : hostOf(url),
    role: member.ID === leaderId ? 'leader' : status ? 'follower' : 'unknown',
    reachable: status !== undefined,
  }))
  result.sort((a, b) => a.address.localeCompare(b.address, undefined, {numeric: true}))
  const leader = result.find((m) => m.role === 'leader')
  return leader ? {backend: 'etcd', members: result, leader: leader.address} : {backend: 'etcd', members: result}
}

/**
 * One member's status. A secured cluster is asked over gRPC with the client's credentials: etcd's HTTP gateway
 * refuses a client certificate once auth is on (and wants a token); a plain one through the gateway, lighter.
 */
async function memberStatus(
  connection: EtcdConnection,
  secured: boolean,
  url: string,
  timeoutMs: number,
): Promise<StatusAnswer | undefined> {
  if (!secured) {
    const status = await gatewayPost(url, '/v3/maintenance/status', timeoutMs)
    return status ? {leader: typeof status.leader === 'string' ? status.leader : '0'} : undefined
  }

  const member = connection.memberClient(url, timeoutMs)
  try {
    const status = await member.maintenance.status()
    return {leader: status.leader}
  } catch {
    return undefined
  } finally {
    member.close()
  }
}

/** One JSON request to a member's gateway; undefined unless it answers 200 with a JSON object in time. */
function gatewayPost(url: string, path: string, timeoutMs: number): Promise<Record<string, unknown> | undefined> {
  const target = new URL(path, url)
  const request = target.protocol === 'https:' ? https.request : http.request
  return new Promise((resolve) => {
    const req = request(
      target,
      {method: 'POST', agent: false, timeout: timeoutMs, headers: {'content-type': 'application/json'}},
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          text += chunk
        })
        res.on('end', () => {
          try {
            const parsed: unknown = JSON.parse(text)
            resolve(res.statusCode === 200 && isRecord(parsed) ? parsed : undefined)
          } catch {
            resolve(undefined)
          }
        })
        res.on('error', () => resolve(undefined))
      },
    )
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(undefined))
    req.end('{}')
  })
}
