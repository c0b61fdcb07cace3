import {existsSync, mkdirSync, mkdtempSync, rmSync} from 'node:fs'
import {createServer, type Server} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'

import {stopCluster} from '../../src/lib/cluster/lifecycle.js'
import {memberProcesses} from '../../src/lib/cluster/live.js'
import {allocatePorts} from '../../src/lib/cluster/ports.js'
import {isAlive, kill, spawnDetached} from '../../src/lib/cluster/process.js'
import {CLUSTER_HOST, type ClusterManifest} from '../../src/lib/cluster/types.js'
import {listeningPids} from '../../src/lib/procnet.js'
import {eventually} from '../helpers/cli.js'

// Stand-ins for servers: a node process that listens on a member's port with the member's folder on its command
// line is that member; this test process listening on another member's port is someone else's.
const dir = mkdtempSync(path.join(tmpdir(), 'svc-cluster-live-'))
const LISTEN = 'require("net").createServer().listen(Number(process.argv[1]), "127.0.0.1")'
const spawned: number[] = []

afterAll(async () => {
  for (const pid of spawned) if (isAlive(pid)) await kill(pid)
  rmSync(dir, {recursive: true, force: true})
})

function member(index: number, port: number): ClusterManifest['members'][number] {
  const folder = path.join(dir, `m${index}`)
  mkdirSync(path.join(folder, 'data'), {recursive: true})
  return {
    name: `m${index}`,
    index,
    clientPort: port,
    ports: {client: port},
    dataDir: path.join(folder, 'data'),
    logFile: path.join(folder, 'server.log'),
    command: process.execPath,
    args: ['-e', LISTEN, String(port), `${folder}/`],
  }
}

describe('cluster members found by their ports', () => {
  it('stops a member listening with its folder on its command line, and leaves a stranger on a member port alone', async () => {
    const [mine, theirs] = await allocatePorts(2)
    const manifest: ClusterManifest = {
      name: 'live',
      kind: 'etcd',
      dir,
      createdAt: new Date().toISOString(),
      members: [member(0, mine!), member(1, theirs!)],
      backendUri: `etcd://${CLUSTER_HOST}:${mine}/services`,
    }
    const first = manifest.members[0]!
    // started by hand: the manifest has no pid for it
    const pid = await spawnDetached(first.command, first.args, {cwd: dir, logFile: first.logFile})
    spawned.push(pid)
    await eventually(async () => listeningPids(CLUSTER_HOST, mine!).includes(pid), 10_000)
    const stranger: Server = createServer()
    await new Promise<void>((resolve) => {
      stranger.listen(theirs, CLUSTER_HOST, resolve)
    })
    try {
      expect(memberProcesses(manifest)).toEqual(new Map([[0, [pid]]]))
      await stopCluster(manifest, {removeData: true})
      expect(isAlive(pid)).toBe(false)
      expect(existsSync(first.dataDir)).toBe(false)
      // this process held the other port all along: it was neither a member nor signalled
      expect(stranger.listening).toBe(true)
      expect(listeningPids(CLUSTER_HOST, theirs!)).toEqual([process.pid])
    } finally {
      stranger.close()
    }
  })
})
