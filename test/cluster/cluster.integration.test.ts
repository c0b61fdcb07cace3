import {setTimeout as sleep} from 'node:timers/promises'
import {describe, type ExpectStatic, it} from 'vitest'

import {
  type ClusterKind,
  type ClusterManifest,
  clusterStatus,
  type MemberStatus,
  readManifest,
  startMember,
  stopMember,
  waitForLeader,
} from '../../src/lib/cluster/index.js'
import {testCluster, withClusterLock} from '../helpers/clusters.js'

const KINDS = ['zk', 'etcd', 'consul'] as const

/** Runs `check` under the cluster's disruption lock; a run without this cluster (SVC_TEST_CLUSTERS) fails here. */
async function withCluster(
  kind: ClusterKind,
  ctx: {expect: ExpectStatic},
  check: (kind: ClusterKind, expect: ExpectStatic) => Promise<void>,
): Promise<void> {
  await withClusterLock(kind, () => check(kind, ctx.expect))
}

/** Every member up, one leader that all follow; waits (bounded), since another test file may be restarting a member. */
async function settled(manifest: ClusterManifest, timeoutMs = 30_000): Promise<MemberStatus[]> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const status = await clusterStatus(manifest)
    const leaders = status.filter((s) => s.role === 'leader')
    const agreed = leaders.length === 1 && status.every((s) => s.up && s.leaderIndex === leaders[0]?.index)
    if (agreed || Date.now() >= deadline) return status
    await sleep(100)
  }
}

function followerOf(status: readonly MemberStatus[]): MemberStatus {
  const found = status.find((s) => s.role === 'follower')
  if (!found) throw new Error(`no follower in ${JSON.stringify(status)}`)
  return found
}

async function checkOneLeader(kind: ClusterKind, expect: ExpectStatic): Promise<void> {
  const {manifest, uri} = testCluster(kind)
  expect(manifest.members).toHaveLength(3)
  expect(manifest.backendUri).toBe(uri)
  expect(uri).toMatch(new RegExp(`^${kind}://127\\.0\\.0\\.1:\\d+,127\\.0\\.0\\.1:\\d+,127\\.0\\.0\\.1:\\d+`))
  const status = await settled(manifest)
  expect(status.map((s) => s.up)).toEqual([true, true, true])
  expect(status.map((s) => typeof s.pid)).toEqual(['number', 'number', 'number'])
  const leaders = status.filter((s) => s.role === 'leader')
  expect(leaders).toHaveLength(1)
  const leader = leaders[0]!.index
  expect(status.filter((s) => s.role === 'follower').map((s) => s.leaderIndex)).toEqual([leader, leader])
  expect(await waitForLeader(manifest, 5000)).toBe(leader)
}

async function checkStopStart(kind: ClusterKind, expect: ExpectStatic): Promise<void> {
  const {manifest, manifestPath} = testCluster(kind)
  const victim = followerOf(await settled(manifest))
  await stopMember(manifest, victim.index)
  try {
    const during = await clusterStatus(manifest)
    expect(during[victim.index]).toMatchObject({up: false, role: 'unknown'})
    expect(during[victim.index]?.pid).toBeUndefined()
    // two of three keep (or elect) a leader
    expect(await waitForLeader(manifest, 20_000)).not.toBe(victim.index)
  } finally {
    const after = await startMember(manifest, victim.index)
    const pid = after.members[victim.index]?.pid
    expect(pid).toBeTypeOf('number')
    expect(pid).not.toBe(victim.pid)
    expect((await readManifest(manifestPath)).members[victim.index]?.pid).toBe(pid)
  }

  const status = await settled(manifest)
  expect(status.map((s) => s.up)).toEqual([true, true, true])
  expect(status.filter((s) => s.role === 'leader')).toHaveLength(1)
}

async function checkFreezeResume(kind: ClusterKind, expect: ExpectStatic): Promise<void> {
  const {manifest} = testCluster(kind)
  const victim = followerOf(await settled(manifest))
  await stopMember(manifest, victim.index, 'SIGSTOP')
  try {
    const during = await clusterStatus(manifest)
    expect(during[victim.index]).toMatchObject({up: false, pid: victim.pid, detail: 'stopped (SIGSTOP)'})
  } finally {
    const after = await startMember(manifest, victim.index)
    expect(after.members[victim.index]?.pid).toBe(victim.pid)
  }

  const status = await settled(manifest)
  expect(status.map((s) => s.up)).toEqual([true, true, true])
}

// Kinds run side by side; within a kind, the disruption lock keeps one member down at a time across test files.
describe('test clusters', () => {
  it.concurrent.for(KINDS)('%s: three members answer; exactly one leads and the others follow it', (kind, ctx) =>
    withCluster(kind, ctx, checkOneLeader),
  )

  it.concurrent.for(KINDS)('%s: a follower stopped with SIGTERM restarts and rejoins', (kind, ctx) =>
    withCluster(kind, ctx, checkStopStart),
  )

  it.concurrent.for(KINDS)('%s: a follower frozen with SIGSTOP resumes', (kind, ctx) =>
    withCluster(kind, ctx, checkFreezeResume),
  )
})
