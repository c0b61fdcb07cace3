import type {ChildProcess} from 'node:child_process'
import {describe, expect, it} from 'vitest'

import {clusterStatus, startMember, stopMember} from '../../src/lib/cluster/index.js'
import {openRegistry} from '../../src/lib/registry/index.js'
import type {ChangeRecord} from '../../src/lib/watch/changes.js'
import {testBackends, uniqueService} from '../helpers/backends.js'
import {eventually, spawnCli, waitForExit} from '../helpers/cli.js'
import {testCluster, withClusterLock} from '../helpers/clusters.js'

/** Collects the NDJSON lines of a `svc watch --json` process. */
function collect(child: ChildProcess): {records: ChangeRecord[]; stderr: () => string} {
  const records: ChangeRecord[] = []
  let buffer = ''
  let stderr = ''
  child.stdout!.on('data', (d: Buffer) => {
    buffer += d.toString()
    const lines = buffer.split('\n')
    buffer = lines.pop()!
    for (const line of lines) if (line) records.push(JSON.parse(line) as ChangeRecord)
  })
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  return {records, stderr: () => stderr}
}

const summary = (records: ChangeRecord[]): string[] =>
  records.map(
    (r) => `${r.type} ${r.instance.id}${r.type === 'changed' ? ` ${[...r.instance.tags].sort().join(',')}` : ''}`,
  )

// Per backend: the --json stream holds exactly the expected events, in order, none twice, across a stopped member.
describe.each(testBackends())('svc watch --json against $name', (backend) => {
  it('streams additions, changes and removals exactly once, also while the member it talks to is down', async () => {
    const service = uniqueService('watched')
    const kind = backend.cluster
    const withHosts = (hosts: string[]): string => backend.uri.replace(/^(\w+:\/\/)[^/]+/, `$1${hosts.join(',')}`)
    const run = async (): Promise<void> => {
      let uri = backend.uri
      let writerUri = backend.uri
      // the members to stop, one at a time, while the watch runs
      let outages: number[] = []
      if (kind) {
        const status = await clusterStatus(testCluster(kind).manifest)
        const follower = status.find((m) => m.role === 'follower')!
        const others = status.filter((m) => m !== follower).map((m) => m.address)
        if (kind === 'consul') {
          // svc talks to the first agent listed: stop that one; the writer's registrations live on another
          // agent, since a Consul registration moves (and flaps) with its agent
          uri = withHosts([follower.address, ...others])
          writerUri = withHosts(others)
          outages = [follower.index]
        } else {
          // ZooKeeper and etcd clients pick their member themselves: stopping each in turn stops theirs
          outages = status.map((m) => m.index)
        }
      }

      const registry = await openRegistry(writerUri)
      const watcher = spawnCli(['watch', service, '--json', '-b', uri])
      const {records, stderr} = collect(watcher)
      const step = async (what: string, condition: () => boolean, ms: number): Promise<void> => {
        await eventually(async () => condition(), ms).catch(() => {
          throw new Error(`${what}: got ${JSON.stringify(summary(records))}; stderr: ${stderr()}`)
        })
      }

      const expected: string[] = []
      try {
        await step('snapshot', () => stderr().includes('svc: watching '), 15_000)
        const a = await registry.register({service, id: 'a', address: '127.0.0.1', port: 7001, tags: ['v1']})
        expected.push('added a')
        await step('added a', () => records.length === expected.length, 5000)
        await a.update({tags: ['v2']})
        expected.push('changed a v2')
        await step('changed a', () => records.length === expected.length, 5000)
        const others = []
        for (const [n, index] of outages.entries()) {
          const {manifest} = testCluster(kind!)
          await stopMember(manifest, index, 'SIGKILL')
          try {
            const id = `m${n}`
            others.push(await registry.register({service, id, address: '127.0.0.1', port: 7100 + n}))
            expected.push(`added ${id}`)
            await step(`added ${id} with member ${index} down`, () => records.length === expected.length, 15_000)
          } finally {
            await startMember(testCluster(kind!).manifest, index)
          }
        }

        await a.close()
        expected.push('removed a')
        await step('removed a', () => records.length === expected.length, 15_000)
        for (const [n, handle] of others.entries()) {
          await handle.close()
          expected.push(`removed m${n}`)
        }

        await step('removed all', () => records.length === expected.length, 15_000)
        // nothing late or doubled arrives after the last change
        await new Promise((resolve) => {
          setTimeout(resolve, 500)
        })
        expect(summary(records)).toEqual(expected)
        expect(records.every((r) => r.service === service && typeof r.ts === 'string')).toBe(true)
        expect(Object.keys(records[0]!)).toEqual(['ts', 'type', 'service', 'instance'])
      } finally {
        watcher.kill('SIGTERM')
        await registry.close()
      }

      // SIGTERM ends a watch cleanly
      expect(await waitForExit(watcher), stderr()).toBe(0)
    }

    await (kind ? withClusterLock(kind, run) : run())
  })
})

describe('svc watch --exec', () => {
  it('runs the handler once at start and after each burst, with instances on stdin', async () => {
    const [local] = testBackends()
    const service = uniqueService('hooked')
    const registry = await openRegistry(local!.uri)
    const handler = `node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(JSON.stringify({service:process.env.SVC_SERVICE,change:process.env.SVC_CHANGE,n:JSON.parse(s).length})))"`
    const watcher = spawnCli(['watch', service, '--exec', handler, '--debounce', '1s', '-b', local!.uri])
    const lines: string[] = []
    watcher.stdout!.on('data', (d: Buffer) =>
      lines.push(
        ...d
          .toString()
          .split('\n')
          .filter((l) => l.startsWith('{')),
      ),
    )
    try {
      await eventually(async () => lines.length === 1, 10_000)
      expect(JSON.parse(lines[0]!)).toEqual({service, change: 'snapshot', n: 0})
      // a burst of three registrations makes one run
      const handles = await Promise.all(
        [1, 2, 3].map((n) => registry.register({service, id: `i${n}`, address: '127.0.0.1', port: 7100 + n})),
      )
      await eventually(async () => lines.length === 2, 10_000)
      expect(JSON.parse(lines[1]!)).toEqual({service, change: 'added', n: 3})
      await handles[0]!.close()
      await eventually(async () => lines.length === 3, 10_000)
      expect(JSON.parse(lines[2]!)).toEqual({service, change: 'removed', n: 2})
      await Promise.all(handles.slice(1).map((h) => h.close()))
    } finally {
      watcher.kill('SIGTERM')
      await waitForExit(watcher)
      await registry.close()
    }
  })

  it('reports a failing handler and keeps watching', async () => {
    const [local] = testBackends()
    const service = uniqueService('failing')
    const watcher = spawnCli(['watch', service, '--exec', 'exit 3', '-b', local!.uri])
    let stderr = ''
    watcher.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString()
    })
    try {
      await eventually(async () => stderr.includes(`handler for ${service} failed: exit status 3`), 10_000)
      expect(watcher.exitCode).toBeNull()
    } finally {
      watcher.kill('SIGTERM')
      await waitForExit(watcher)
    }
  })
})
