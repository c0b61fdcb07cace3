import type {Driver, MemberLayout, MemberPlan, MemberProbe, PlanContext} from './driver.js'
import {describeError, httpJson} from './probe.js'
import {CLUSTER_HOST, type ClusterManifest, type MemberManifest} from './types.js'

const portOf = (m: {ports: Record<string, number>}, name: string): number => m.ports[name] as number

/** How the members know each other: the Raft (server RPC) address, which /v1/status/leader and /peers report. */
export const consulServerAddress = (m: {ports: Record<string, number>}): string =>
  `${CLUSTER_HOST}:${portOf(m, 'server')}`

/**
 * Consul 1.8 agent flags for one server member: loopback only, no DNS or gRPC, joins every other member every
 * second until it succeeds, raft_multiplier 1 for the quickest elections, and no calls home (update check).
 */
export function consulPlan(ctx: PlanContext, index: number): MemberPlan {
  const me = ctx.members[index] as MemberLayout
  const joins = ctx.members
    .filter((m) => m.index !== index)
    .flatMap((m) => ['-retry-join', `${CLUSTER_HOST}:${portOf(m, 'serfLan')}`])
  return {
    args: [
      'agent',
      '-server',
      '-bootstrap-expect',
      String(ctx.members.length),
      '-bind',
      CLUSTER_HOST,
      '-client',
      CLUSTER_HOST,
      '-data-dir',
      me.dataDir,
      '-node',
      me.name,
      '-disable-host-node-id',
      '-http-port',
      String(portOf(me, 'http')),
      '-serf-lan-port',
      String(portOf(me, 'serfLan')),
      '-serf-wan-port',
      String(portOf(me, 'serfWan')),
      '-server-port',
      String(portOf(me, 'server')),
      '-dns-port',
      '-1',
      '-grpc-port',
      '-1',
      ...joins,
      '-retry-interval',
      '1s',
      '-log-level',
      'info',
      '-hcl',
      'performance { raft_multiplier = 1 }',
      '-hcl',
      'disable_update_check = true',
      '-hcl',
      'disable_anonymous_signature = true',
      '-hcl',
      'leave_on_terminate = false',
    ],
    files: [],
  }
}

async function consulProbe(member: MemberManifest, timeoutMs: number): Promise<MemberProbe> {
  const selfId = consulServerAddress(member)
  try {
    const [leader, peers] = await Promise.all([
      httpJson(CLUSTER_HOST, member.clientPort, 'GET', '/v1/status/leader', timeoutMs),
      httpJson(CLUSTER_HOST, member.clientPort, 'GET', '/v1/status/peers', timeoutMs),
    ])
    const probe: MemberProbe = {up: true, selfId}
    if (typeof leader === 'string' && leader !== '') probe.leaderId = leader
    else probe.detail = 'no leader'
    probe.joined = Array.isArray(peers) && peers.includes(selfId)
    if (!probe.joined) probe.detail = probe.detail ? `${probe.detail}; not a raft peer` : 'not a raft peer'
    return probe
  } catch (error) {
    return {up: false, selfId, detail: describeError(error)}
  }
}

/** The leader has put every member into the catalog, so reads through any agent see every node. */
async function catalogComplete(
  manifest: ClusterManifest,
  leaderIndex: number,
  timeoutMs: number,
): Promise<string | undefined> {
  const leader = manifest.members[leaderIndex]
  if (!leader) return 'no leader'
  try {
    const nodes = await httpJson(CLUSTER_HOST, leader.clientPort, 'GET', '/v1/catalog/nodes', timeoutMs)
    const count = Array.isArray(nodes) ? nodes.length : 0
    return count >= manifest.members.length
      ? undefined
      : `the catalog lists ${count} of ${manifest.members.length} nodes`
  } catch (error) {
    return `catalog: ${describeError(error)}`
  }
}

export const consulDriver: Driver = {
  kind: 'consul',
  label: 'Consul',
  portNames: ['http', 'serfLan', 'serfWan', 'server'],
  memberName: (index) => `consul${index + 1}`,
  plan: (ctx, _command, index) => consulPlan(ctx, index),
  probe: consulProbe,
  staticId: consulServerAddress,
  backendUri: (members) => `consul://${members.map((m) => `${CLUSTER_HOST}:${m.clientPort}`).join(',')}`,
  clusterReady: catalogComplete,
}
