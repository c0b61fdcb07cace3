import {existsSync, mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'

import {memberDir} from '../../src/lib/cluster/driver.js'
import {readManifest} from '../../src/lib/cluster/manifest.js'
import {isAlive, kill, spawnDetached} from '../../src/lib/cluster/process.js'
import {CLUSTER_HOST, type ClusterKind} from '../../src/lib/cluster/types.js'
import {listeningPids} from '../../src/lib/procnet.js'
import {eventually, runCli} from '../helpers/cli.js'

// `svc cluster up` (the built binary) with a member that crashed and was started again by hand from the
// manifest's command line: its pid is not the manifest's, and `down` must still find it by its ports.
const home = mkdtempSync(path.join(tmpdir(), 'svc-cluster-down-'))
const env = {SVC_HOME: home}
const started: number[] = []

afterAll(async () => {
  for (const kind of ['etcd', 'zk'])
    await runCli(['cluster', 'down', '--name', `hand-${kind}`], {env, timeoutMs: 60_000})
  for (const pid of started) if (isAlive(pid)) await kill(pid)
  rmSync(home, {recursive: true, force: true})
}, 120_000)

describe('svc cluster down', () => {
  it.for(['etcd', 'zk'] as const)(
    'stops a %s member restarted by hand, by what listens on its ports, before it deletes any data',
    async (kind: ClusterKind) => {
      const name = `hand-${kind}`
      const up = await runCli(['cluster', 'up', '--backend', kind, '--name', name], {env, timeoutMs: 120_000})
      expect(up.code, up.stderr).toBe(0)
      const manifest = await readManifest(path.join(home, 'clusters', name))
      const member = manifest.members[1]!
      await kill(member.pid!)

      // what a user does after a crash: the manifest's command line, from the member's folder
      const pid = await spawnDetached(member.command, member.args, {cwd: memberDir(member), logFile: member.logFile})
      started.push(pid)
      expect(pid).not.toBe(member.pid)
      await eventually(async () => listeningPids(CLUSTER_HOST, member.clientPort).includes(pid), 30_000)

      // listening is not serving yet: a ZooKeeper member answers only once it has synced with the leader
      const members = await eventually(
        async () => {
          const status = await runCli(['cluster', 'status', '--name', name, '--json'], {env})
          const parsed = JSON.parse(status.stdout) as {members: {up: boolean; pid?: number}[]}
          return parsed.members.every((m) => m.up) && parsed.members
        },
        30_000,
        250,
      )
      expect(members).toMatchObject([{up: true}, {up: true, pid}, {up: true}])

      // sampled while `down` runs: the member's data never goes while its process lives
      const dataDir = member.dataDir
      const deletedWhileAlive: string[] = []
      const sampler = setInterval(() => {
        if (isAlive(pid) && !existsSync(dataDir)) deletedWhileAlive.push(new Date().toISOString())
      }, 5)
      const down = await runCli(['cluster', 'down', '--name', name], {env, timeoutMs: 60_000}).finally(() =>
        clearInterval(sampler),
      )
      expect(down.code, down.stderr).toBe(0)
      expect(down.stdout).toBe(`stopped ${kind} cluster "${name}" (3 running members) and removed ${manifest.dir}\n`)
      expect(isAlive(pid)).toBe(false)
      expect(deletedWhileAlive).toEqual([])
      expect(existsSync(manifest.dir)).toBe(false)
      for (const m of manifest.members) expect(listeningPids(CLUSTER_HOST, m.clientPort)).toEqual([])
    },
  )
})
