import {type ChildProcess, spawn} from 'node:child_process'
import {mkdirSync, openSync, writeFileSync} from 'node:fs'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

import {listeningPids} from '../../src/lib/procnet.js'
import {allocatePorts, findBinary} from '../../src/lib/cluster/index.js'
import {zookeeperClasspath} from '../../src/lib/cluster/binaries.js'
import {httpJson} from '../../src/lib/cluster/probe.js'
import type {ClusterKind} from '../../src/lib/cluster/types.js'
import {leaderPort} from './leader-watch.js'

/**
 * A 3-member cluster started the way a user would start one by hand, without svc and without a manifest: plain
 * processes with hand-written configuration on 127.0.0.1. Drills must find the leader's process by its port.
 */
export interface ExternalCluster {
  kind: ClusterKind
  clientPorts: number[]
  pids: number[]
  uri(ports?: number[]): string
  stop(): Promise<void>
}

function start(command: string, args: string[], dir: string): ChildProcess {
  const log = openSync(path.join(dir, 'server.log'), 'a')
  const child = spawn(command, args, {cwd: dir, stdio: ['ignore', log, log]})
  child.on('error', () => {})
  return child
}

function zkMembers(root: string, ports: number[]): Array<{dir: string; command: string; args: string[]}> {
  const java = findBinary('zk')
  const servers = [0, 1, 2].map((i) => `server.${i + 1}=127.0.0.1:${ports[3 + i]}:${ports[6 + i]}`)
  return [0, 1, 2].map((i) => {
    const dir = path.join(root, `zk${i + 1}`)
    mkdirSync(path.join(dir, 'data'), {recursive: true})
    writeFileSync(path.join(dir, 'data', 'myid'), `${i + 1}\n`)
    const cfg = [
      'tickTime=500',
      'initLimit=10',
      'syncLimit=5',
      `dataDir=${path.join(dir, 'data')}`,
      `clientPort=${ports[i]}`,
      'clientPortAddress=127.0.0.1',
      'admin.enableServer=false',
      '4lw.commands.whitelist=srvr,ruok',
      ...servers,
    ].join('\n')
    writeFileSync(path.join(dir, 'zoo.cfg'), cfg + '\n')
    return {
      dir,
      command: java,
      args: [
        '-Xmx128m',
        '-XX:+UseSerialGC',
        '-XX:TieredStopAtLevel=1',
        '-cp',
        zookeeperClasspath(),
        'org.apache.zookeeper.server.quorum.QuorumPeerMain',
        path.join(dir, 'zoo.cfg'),
      ],
    }
  })
}

const url = (p: number | undefined): string => `http://127.0.0.1:${p}`

function etcdMembers(root: string, ports: number[]): Array<{dir: string; command: string; args: string[]}> {
  const cluster = [0, 1, 2].map((i) => `ext${i + 1}=${url(ports[3 + i])}`).join(',')
  return [0, 1, 2].map((i) => {
    const dir = path.join(root, `etcd${i + 1}`)
    mkdirSync(dir, {recursive: true})
    return {
      dir,
      command: findBinary('etcd'),
      args: [
        '--name',
        `ext${i + 1}`,
        '--data-dir',
        path.join(dir, 'data'),
        '--listen-client-urls',
        url(ports[i]),
        '--advertise-client-urls',
        url(ports[i]),
        '--listen-peer-urls',
        url(ports[3 + i]),
        '--initial-advertise-peer-urls',
        url(ports[3 + i]),
        '--initial-cluster',
        cluster,
        '--initial-cluster-state',
        'new',
        '--initial-cluster-token',
        `ext-${path.basename(root)}`,
      ],
    }
  })
}

function consulMembers(root: string, ports: number[]): Array<{dir: string; command: string; args: string[]}> {
  // ports: http 0-2, serf lan 3-5, serf wan 6-8, server 9-11
  return [0, 1, 2].map((i) => {
    const dir = path.join(root, `consul${i + 1}`)
    mkdirSync(dir, {recursive: true})
    const port = (k: number): string => String(ports[k * 3 + i])
    return {
      dir,
      command: findBinary('consul'),
      args: [
        'agent',
        '-server',
        '-bootstrap-expect',
        '3',
        '-bind',
        '127.0.0.1',
        '-client',
        '127.0.0.1',
        '-data-dir',
        path.join(dir, 'data'),
        '-node',
        `ext-consul${i + 1}`,
        '-http-port',
        port(0),
        '-serf-lan-port',
        port(1),
        '-serf-wan-port',
        port(2),
        '-server-port',
        port(3),
        '-dns-port',
        '-1',
        '-grpc-port',
        '-1',
        '-retry-join',
        `127.0.0.1:${ports[3]}`,
        '-retry-interval',
        '1s',
      ],
    }
  })
}

async function consulPeers(port: number): Promise<number> {
  try {
    const peers = await httpJson('127.0.0.1', port, 'GET', '/v1/status/peers', 500)
    return Array.isArray(peers) ? peers.length : 0
  } catch {
    return 0
  }
}

export async function startExternalCluster(
  kind: ClusterKind,
  root: string,
  timeoutMs = 90_000,
): Promise<ExternalCluster> {
  const ports = await allocatePorts(kind === 'consul' ? 12 : kind === 'zk' ? 9 : 6)
  const members =
    kind === 'zk' ? zkMembers(root, ports) : kind === 'etcd' ? etcdMembers(root, ports) : consulMembers(root, ports)
  const children = members.map((m) => start(m.command, m.args, m.dir))
  const clientPorts = ports.slice(0, 3)
  const stop = async (): Promise<void> => {
    // the members we started, and whatever a drill started again in their place
    const pids = new Set([...children.map((c) => c.pid), ...clientPorts.flatMap((p) => listeningPids('127.0.0.1', p))])
    for (const pid of pids) {
      try {
        if (pid !== undefined) process.kill(pid, 'SIGKILL')
      } catch {
        // gone
      }
    }

    await sleep(200)
  }

  const deadline = Date.now() + timeoutMs
  for (;;) {
    const leader = await leaderPort(kind, clientPorts)
    const joined =
      kind !== 'consul' || (await Promise.all(clientPorts.map((p) => consulPeers(p)))).every((n) => n === 3)
    if (leader !== undefined && joined) break
    if (Date.now() >= deadline) {
      await stop()
      throw new Error(`the hand-started ${kind} cluster in ${root} elected no leader within ${timeoutMs} ms`)
    }

    await sleep(200)
  }

  return {
    kind,
    clientPorts,
    pids: children.map((c) => c.pid!),
    uri: (list = clientPorts) =>
      `${kind}://${list.map((p) => `127.0.0.1:${p}`).join(',')}${kind === 'consul' ? '' : '/services'}`,
    stop,
  }
}
