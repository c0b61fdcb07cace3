import type {ChildProcess} from 'node:child_process'

import {clusterStatus, startMember, stopMember} from '../../src/lib/cluster/index.js'
import type {ClusterKind, MemberStatus} from '../../src/lib/cluster/types.js'
import {establishedConnections} from '../../src/lib/procnet.js'
import {openRegistry} from '../../src/lib/registry/index.js'
import {eventually} from './cli.js'
import {testCluster} from './clusters.js'

const portOf = (address: string): number => Number(address.slice(address.lastIndexOf(':') + 1))

/** The backend URI with its host list replaced by `hosts`. */
export function withHosts(uri: string, hosts: readonly string[]): string {
  return uri.replace(/^(\w+:\/\/)[^/]*/, `$1${hosts.join(',')}`)
}

/** The one member a process holds a connection to; undefined while it holds none or several. */
export function memberTalkedTo(pid: number, members: readonly MemberStatus[]): MemberStatus | undefined {
  const ports = new Set(establishedConnections(pid).map((s) => s.remotePort))
  const used = members.filter((m) => ports.has(portOf(m.address)))
  return used.length === 1 ? used[0] : undefined
}

export interface MemberDrillResult {
  victim: MemberStatus
  /** From the fault to a leader among the survivors (0 when the victim was not the leader). */
  electionMs: number
  /** From the fault to the instance read as present through the survivors. */
  presentMs: number
}

/**
 * Stops one member (the one `pick` names, seeing who the registrar talks to), measures the election among the
 * survivors and the time until `present` sees the instance through them, and starts the member again.
 */
export async function memberDrill(opts: {
  kind: ClusterKind
  uri: string
  registrar: ChildProcess
  pick: (members: MemberStatus[], talkedTo: MemberStatus) => MemberStatus
  present: (uri: string) => Promise<boolean>
  timeoutMs: number
}): Promise<MemberDrillResult> {
  const {manifest} = testCluster(opts.kind)
  const members = await clusterStatus(manifest)
  const talkedTo = await eventually(async () => memberTalkedTo(opts.registrar.pid!, members), 5000)
  const victim = opts.pick(members, talkedTo)
  const survivors = members.filter((m) => m.index !== victim.index)
  const survivorsUri = withHosts(
    opts.uri,
    survivors.map((m) => m.address),
  )
  const faultAt = Date.now()
  await stopMember(manifest, victim.index, victim.role === 'leader' ? 'SIGKILL' : 'SIGTERM')
  try {
    const elected =
      victim.role === 'leader'
        ? eventually(
            async () => {
              const status = await clusterStatus(manifest)
              return status.some((m) => m.index !== victim.index && m.role === 'leader') && Date.now()
            },
            opts.timeoutMs,
            100,
          )
        : Promise.resolve(faultAt)
    const present = eventually(async () => (await opts.present(survivorsUri)) && Date.now(), opts.timeoutMs, 100)
    const [electedAt, presentAt] = await Promise.all([elected, present])
    return {victim, electionMs: electedAt - faultAt, presentMs: presentAt - faultAt}
  } finally {
    await startMember(manifest, victim.index)
  }
}

/** Listed and passing, read through a registry of its own on `uri`. */
export async function presentThrough(uri: string, service: string, port: number): Promise<boolean> {
  const reader = await openRegistry(uri, {connectTimeoutMs: 3000})
  try {
    return (await reader.listInstances(service)).some((i) => i.port === port && i.health === 'passing')
  } finally {
    await reader.close()
  }
}
