import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'

import {expectRecovered, killLeaderDrill, stopProcess} from '../helpers/drills.js'
import {type ExternalCluster, startExternalCluster} from '../helpers/external-cluster.js'
import {eventually} from '../helpers/cli.js'
import {leaderPort} from '../helpers/leader-watch.js'

// Clusters started by hand, without svc: kill-leader finds the leader's process through /proc by its port.
const root = mkdtempSync(path.join(tmpdir(), 'svc-chaos-ext-'))
const env = {SVC_HOME: path.join(root, 'home')}
const started: ExternalCluster[] = []

afterAll(async () => {
  await Promise.allSettled(started.map((c) => c.stop()))
  rmSync(root, {recursive: true, force: true})
}, 60_000)

const RESTART_AFTER = {etcd: '2s', zk: '2s', consul: '15s'} as const

describe('svc chaos kill-leader on clusters svc did not start', () => {
  it.for(['etcd', 'zk', 'consul'] as const)('%s', async (kind) => {
    const cluster = await startExternalCluster(kind, path.join(root, kind))
    started.push(cluster)
    const run = await killLeaderDrill(
      kind,
      cluster.clientPorts,
      (ports) => cluster.uri(ports),
      // Consul's default timers (raft_multiplier 5) may take several seconds to elect: a member back sooner
      // still leads, and the drill rightly reports no new leader
      ['--restart-after', RESTART_AFTER[kind]],
      env,
    )
    try {
      const leaderPid = cluster.pids[cluster.clientPorts.indexOf(run.oldLeaderPort)]
      expect(run.report.target).toMatchObject({kind: 'process', pid: leaderPid})
      expect(run.report.restart?.how).toMatch(/^ran its command line again/)
      expectRecovered(expect, kind, run, true)
      // the restarted member serves again, and the cluster still has one leader
      await eventually(async () => (await leaderPort(kind, cluster.clientPorts)) !== undefined, 10_000)
    } finally {
      await stopProcess(run.registered)
      await cluster.stop()
    }
  })
})
