import {setTimeout as sleep} from 'node:timers/promises'
import {describe, expect, it} from 'vitest'

import {clusterStatus, startMember, stopMember} from '../../src/lib/cluster/index.js'
import type {MemberStatus} from '../../src/lib/cluster/types.js'
import {openRegistry} from '../../src/lib/registry/index.js'
import type {RegistrationState} from '../../src/lib/registry/types.js'
import {uniqueService} from '../helpers/backends.js'
import {eventually} from '../helpers/cli.js'
import {testCluster, withClusterLock} from '../helpers/clusters.js'
import {consulHttp} from '../helpers/consul-api.js'
import {hostPort} from '../helpers/tcp-proxy.js'

// A registration survives losing the agent it talks to, and the copy it left there goes. (The leader killed and the
// presence bound on every backend are the contract suite's, in contract.integration.)
const TTL_MS = 3000
const REFRESH_MS = 1000

interface Entry {
  Node: {Node: string}
  Checks: Array<{Status: string}>
}

async function nodeName(address: string): Promise<string> {
  const self = (await consulHttp(hostPort(address), 'GET', '/v1/agent/self')) as {Config: {NodeName: string}}
  return self.Config.NodeName
}

/** The instance is registered and passing on a node other than `gone`, as a surviving agent's catalog shows. */
async function presentElsewhere(survivor: string, service: string, gone: string): Promise<boolean> {
  try {
    const entries = (await consulHttp(hostPort(survivor), 'GET', `/v1/health/service/${service}?stale`)) as Entry[]
    return entries.some((e) => e.Node.Node !== gone && e.Checks.every((c) => c.Status === 'passing'))
  } catch {
    return false
  }
}

/** When a leader other than `old` is first seen by the survivors, after `since`. */
async function electedAt(survivors: MemberStatus[], old: string, timeoutMs: number): Promise<number> {
  return eventually(async () => {
    for (const m of survivors) {
      const leader = (await consulHttp(hostPort(m.address), 'GET', '/v1/status/leader').catch(() => '')) as string
      if (leader && leader !== old) return Date.now()
    }

    return undefined
  }, timeoutMs)
}

async function drill(target: (status: MemberStatus[]) => MemberStatus) {
  const {manifest} = testCluster('consul')
  const status = await clusterStatus(manifest)
  const victim = target(status)
  const survivors = status.filter((m) => m.index !== victim.index)
  const oldLeader = (await consulHttp(hostPort(victim.address), 'GET', '/v1/status/leader')) as string
  const gone = await nodeName(victim.address)
  const states: Array<[RegistrationState, string]> = []
  const log: string[] = []
  const hosts = [victim, ...survivors].map((m) => m.address).join(',')
  const registrar = await openRegistry(`consul://${hosts}`, {log: (m) => log.push(m)})
  const service = uniqueService('drill')
  const handle = await registrar.register(
    {service, id: 'd1', address: '127.0.0.1', port: 7601},
    {ttlMs: TTL_MS, refreshMs: REFRESH_MS, onStateChange: (state, detail) => states.push([state, detail])},
  )
  try {
    const faultAt = Date.now()
    await stopMember(manifest, victim.index, victim.role === 'leader' ? 'SIGKILL' : 'SIGTERM')
    const election = victim.role === 'leader' ? electedAt(survivors, oldLeader, 40_000) : Promise.resolve(faultAt)
    const presentAt = await eventually(
      async () => ((await presentElsewhere(survivors[0]!.address, service, gone)) ? Date.now() : undefined),
      45_000,
    )
    const elected = await election
    console.info(
      `consul: ${victim.role} agent the registrar talks to lost: new leader after ${elected - faultAt} ms, registration present elsewhere after ${presentAt - faultAt} ms`,
    )
    expect(presentAt - faultAt).toBeLessThan(elected - faultAt + REFRESH_MS + 2000)
    await eventually(async () => states.some(([s]) => s === 'restored'), 10_000)
    return {states, log, handle, registrar, service, victim}
  } catch (error) {
    await handle.close().catch(() => {})
    await registrar.close()
    throw error
  } finally {
    await startMember(manifest, victim.index)
  }
}

/** The registrar's agent, a follower, stops and comes back: one episode, and the copy left there goes. */
async function memberRestart(): Promise<void> {
  const run = await drill((s) => s.find((m) => m.role === 'follower')!)
  try {
    // the member is back: nothing more to report
    await sleep(3 * REFRESH_MS)
    expect(run.states.map(([s]) => s)).toEqual(['lost', 'restored'])
    expect(run.log.filter((line) => /\blost\b/.test(line))).toEqual([])
    await eventually(async () => {
      const raw = (await consulHttp(hostPort(run.victim.address), 'GET', `/v1/agent/services`)) as object
      return !('d1' in raw)
    }, 10_000)
  } finally {
    await run.handle.close()
    await run.registrar.close()
  }
}

describe('consul: a registration outlives the agent it talks to', () => {
  it('stop and restart the member the registrar talks to: present again at once, one lost and one restored', () =>
    withClusterLock('consul', memberRestart))
})
