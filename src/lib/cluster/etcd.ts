import type {Driver, MemberLayout, MemberPlan, MemberProbe, PlanContext} from './driver.js'
import {isRecord} from '../guards.js'
import {describeError, httpJson} from './probe.js'
import {CLUSTER_HOST, type MemberManifest} from './types.js'

const url = (port: number): string => `http://${CLUSTER_HOST}:${port}`
const portOf = (m: MemberLayout, name: string): number => m.ports[name] as number

/**
 * etcd 3.4 flags for one member. Heartbeat 100 ms and election timeout 500 ms make re-election after losing the
 * leader take about a second. On a restart with existing data etcd ignores the initial-cluster flags.
 */
export function etcdPlan(ctx: PlanContext, index: number): MemberPlan {
  const me = ctx.members[index] as MemberLayout
  return {
    args: [
      `--name=${me.name}`,
      `--data-dir=${me.dataDir}`,
      `--listen-client-urls=${url(portOf(me, 'client'))}`,
      `--advertise-client-urls=${url(portOf(me, 'client'))}`,
      `--listen-peer-urls=${url(portOf(me, 'peer'))}`,
      `--initial-advertise-peer-urls=${url(portOf(me, 'peer'))}`,
      `--initial-cluster=${ctx.members.map((m) => `${m.name}=${url(portOf(m, 'peer'))}`).join(',')}`,
      '--initial-cluster-state=new',
      `--initial-cluster-token=${ctx.token}`,
      '--heartbeat-interval=100',
      '--election-timeout=500',
      '--logger=zap',
      '--log-outputs=stderr',
    ],
    files: [],
  }
}

/** Reads `POST /v3/maintenance/status`: uint64 fields arrive as decimal strings; a zero leader is left out. */
export function parseEtcdStatus(body: unknown): MemberProbe {
  if (!isRecord(body)) return {up: false, detail: 'status is not a JSON object'}
  const header = isRecord(body.header) ? body.header : {}
  const selfId = typeof header.member_id === 'string' ? header.member_id : undefined
  const leader = typeof body.leader === 'string' && body.leader !== '0' ? body.leader : undefined
  const probe: MemberProbe = {up: true}
  if (selfId) probe.selfId = selfId
  if (leader) probe.leaderId = leader
  else probe.detail = 'no leader'
  return probe
}

export const etcdDriver: Driver = {
  kind: 'etcd',
  label: 'etcd',
  portNames: ['client', 'peer'],
  memberName: (index) => `etcd${index + 1}`,
  plan: (ctx, _command, index) => etcdPlan(ctx, index),
  async probe(member: MemberManifest, timeoutMs: number): Promise<MemberProbe> {
    try {
      return parseEtcdStatus(
        await httpJson(CLUSTER_HOST, member.clientPort, 'POST', '/v3/maintenance/status', timeoutMs, '{}'),
      )
    } catch (error) {
      return {up: false, detail: describeError(error)}
    }
  },
  backendUri: (members) => `etcd://${members.map((m) => `${CLUSTER_HOST}:${m.clientPort}`).join(',')}/services`,
}
