import path from 'node:path'

import {zookeeperClasspath} from './binaries.js'
import type {Driver, MemberLayout, MemberProbe, PlanContext} from './driver.js'
import {describeError, tcpCommand} from './probe.js'
import {CLUSTER_HOST, type MemberManifest} from './types.js'

export const ZK_MAIN_CLASS = 'org.apache.zookeeper.server.quorum.QuorumPeerMain'

export interface ZkConfigInput {
  dataDir: string
  clientPort: number
  /** Every member: its myid and its quorum and election ports. One member means standalone. */
  servers: Array<{id: number; quorumPort: number; electionPort: number}>
}

/** zoo.cfg for one member: short ticks for quick elections and sessions, loopback only, no admin server. */
export function zookeeperConfig(input: ZkConfigInput): string {
  const lines = [
    'tickTime=500',
    'initLimit=10',
    'syncLimit=5',
    `dataDir=${input.dataDir}`,
    `clientPort=${input.clientPort}`,
    `clientPortAddress=${CLUSTER_HOST}`,
    'maxClientCnxns=0',
    'admin.enableServer=false',
    '4lw.commands.whitelist=srvr,mntr,ruok,stat',
    'autopurge.snapRetainCount=3',
    'autopurge.purgeInterval=1',
  ]
  if (input.servers.length > 1) {
    for (const s of input.servers) lines.push(`server.${s.id}=${CLUSTER_HOST}:${s.quorumPort}:${s.electionPort}`)
  }

  return lines.join('\n') + '\n'
}

/** JVM flags: a small heap, a quick start, logs on stdout (the member's log file). */
export function zookeeperJvmArgs(memberDir: string, classpath: string): string[] {
  return [
    '-Xms32m',
    '-Xmx256m',
    '-XX:+UseSerialGC',
    '-XX:TieredStopAtLevel=1',
    '-XX:-UsePerfData',
    '-XX:+ExitOnOutOfMemoryError',
    '-Djava.net.preferIPv4Stack=true',
    `-Dzookeeper.log.dir=${memberDir}`,
    '-Dzookeeper.root.logger=INFO,CONSOLE',
    '-Dzookeeper.jmx.log4j.disable=true',
    '-Dorg.slf4j.simpleLogger.logFile=System.out',
    '-Dorg.slf4j.simpleLogger.showDateTime=true',
    "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSS",
    '-cp',
    classpath,
  ]
}

export function zookeeperPlan(
  ctx: PlanContext,
  index: number,
  classpath: string,
): {args: string[]; files: Array<{path: string; content: string}>} {
  const me = ctx.members[index] as MemberLayout
  const port = (m: MemberLayout, name: string): number => m.ports[name] as number
  const cfgPath = path.join(me.memberDir, 'zoo.cfg')
  const cfg = zookeeperConfig({
    dataDir: me.dataDir,
    clientPort: port(me, 'client'),
    servers: ctx.members.map((m) => ({
      id: m.index + 1,
      quorumPort: port(m, 'quorum'),
      electionPort: port(m, 'election'),
    })),
  })
  return {
    args: [...zookeeperJvmArgs(me.memberDir, classpath), ZK_MAIN_CLASS, cfgPath],
    files: [
      {path: cfgPath, content: cfg},
      {path: path.join(me.dataDir, 'myid'), content: `${index + 1}\n`},
    ],
  }
}

/** Reads the `srvr` answer: the Mode line, or why the member does not serve. */
export function parseSrvr(text: string): MemberProbe {
  const mode = /^Mode:\s*(\S+)/m.exec(text)?.[1]
  if (mode === 'leader' || mode === 'follower' || mode === 'standalone') return {up: true, role: mode}
  if (mode) return {up: true, role: 'unknown', detail: `mode ${mode}`}
  const said = text.trim().split('\n')[0] ?? ''
  return {up: false, role: 'unknown', detail: said ? `says: ${said}` : 'empty answer to srvr'}
}

export const zookeeperDriver: Driver = {
  kind: 'zk',
  label: 'ZooKeeper',
  portNames: ['client', 'quorum', 'election'],
  memberName: (index) => `zk${index + 1}`,
  plan: (ctx, _command, index) => zookeeperPlan(ctx, index, zookeeperClasspath()),
  async probe(member: MemberManifest, timeoutMs: number): Promise<MemberProbe> {
    try {
      return parseSrvr(await tcpCommand(CLUSTER_HOST, member.clientPort, 'srvr', timeoutMs))
    } catch (error) {
      return {up: false, role: 'unknown', detail: describeError(error)}
    }
  },
  backendUri: (members) => `zk://${members.map((m) => `${CLUSTER_HOST}:${m.clientPort}`).join(',')}/services`,
}
