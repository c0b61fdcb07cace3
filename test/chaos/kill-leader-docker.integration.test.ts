import {execFile} from 'node:child_process'
import {chmodSync, copyFileSync, mkdirSync, mkdtempSync, realpathSync, rmSync, statSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {allocatePorts} from '../../src/lib/cluster/ports.js'
import {eventually} from '../helpers/cli.js'
import {acquireDockerLock, docker, importImage} from '../helpers/docker.js'
import {expectRecovered, killLeaderDrill, stopProcess} from '../helpers/drills.js'
import {leaderPort} from '../helpers/leader-watch.js'

// A 3-member etcd cluster run the docker-compose way (one container per member on a user network, client ports
// published on 127.0.0.1): kill-leader maps the leader's port to its container, kills it and starts it again.
// No image can be pulled here, so the image is imported from the host's etcd binary and the libraries it loads.
const IMAGE = 'svc-test-etcd:latest'
const run = `svcchaos-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`
const network = `${run}-net`
const root = mkdtempSync(path.join(tmpdir(), 'svc-chaos-docker-'))
const env = {SVC_HOME: path.join(root, 'home')}

function execText(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, {timeout: 60_000}, (error, stdout) => (error ? reject(error) : resolve(stdout)))
  })
}

/** busybox-free image: /usr/bin/etcd plus the shared libraries ldd names for it. */
async function ensureEtcdImage(): Promise<void> {
  const etcd = realpathSync('/usr/bin/etcd')
  // the image is kept between runs; its label says which etcd binary it holds
  const {size, mtimeMs} = statSync(etcd)
  await importImage(IMAGE, `etcd-${size}-${Math.round(mtimeMs)}`, async (fs) => {
    mkdirSync(path.join(fs, 'usr/bin'), {recursive: true})
    copyFileSync(etcd, path.join(fs, 'usr/bin/etcd'))
    chmodSync(path.join(fs, 'usr/bin/etcd'), 0o755)
    const libraries = [...(await execText('ldd', [etcd])).matchAll(/(\/\S+)\s+\(0x/g)].map((m) => m[1]!)
    for (const library of libraries) {
      mkdirSync(path.join(fs, path.dirname(library)), {recursive: true})
      copyFileSync(realpathSync(library), path.join(fs, library))
    }
  })
}

const uriFor = (list: number[]): string => `etcd://${list.map((p) => `127.0.0.1:${p}`).join(',')}/services`

let releaseDocker: (() => void) | undefined

beforeAll(async () => {
  // no daemon restart of another test file while the members run
  releaseDocker = await acquireDockerLock()
}, 200_000)

afterAll(async () => {
  const ids = (await docker(['ps', '-aq', '--filter', `label=svc.test.run=${run}`]).catch(() => ''))
    .split('\n')
    .filter(Boolean)
  if (ids.length > 0) await docker(['rm', '-f', ...ids]).catch(() => '')
  await docker(['network', 'rm', network]).catch(() => '')
  rmSync(root, {recursive: true, force: true})
  releaseDocker?.()
}, 60_000)

describe('svc chaos kill-leader on an etcd cluster in Docker containers', () => {
  it('finds the container that publishes the leader port, kills it, starts it again, and recovers', async () => {
    await ensureEtcdImage()
    await docker(['network', 'create', '--label', `svc.test.run=${run}`, network])
    // fixed host ports, as compose files publish them: a container started again keeps its port
    const ports = await allocatePorts(3)
    const names = [1, 2, 3].map((i) => `${run}-etcd${i}`)
    const initial = names.map((name, i) => `m${i + 1}=http://${name}:2380`).join(',')
    await Promise.all(
      names.map((name, i) =>
        docker([
          'run',
          '-d',
          '--name',
          name,
          '--network',
          network,
          '--label',
          `svc.test.run=${run}`,
          '-p',
          `127.0.0.1:${ports[i]}:2379`,
          IMAGE,
          '/usr/bin/etcd',
          '--name',
          `m${i + 1}`,
          '--data-dir',
          '/tmp/data',
          '--listen-client-urls',
          'http://0.0.0.0:2379',
          '--advertise-client-urls',
          `http://127.0.0.1:${ports[i]}`,
          '--listen-peer-urls',
          'http://0.0.0.0:2380',
          '--initial-advertise-peer-urls',
          `http://${name}:2380`,
          '--initial-cluster',
          initial,
          '--initial-cluster-state',
          'new',
          '--initial-cluster-token',
          run,
        ]),
      ),
    )
    await eventually(async () => (await leaderPort('etcd', ports)) !== undefined, 60_000)

    const drill = await killLeaderDrill('etcd', ports, uriFor, ['--restart-after', '2s'], env)
    try {
      const leaderName = names[ports.indexOf(drill.oldLeaderPort)]
      expect(drill.report.target).toMatchObject({kind: 'container', containerName: leaderName})
      expectRecovered(expect, 'etcd', drill, true)
      expect(await docker(['inspect', '--format', '{{.State.Running}}', leaderName!])).toBe('true')
      await eventually(async () => (await leaderPort('etcd', ports)) !== undefined, 10_000)
    } finally {
      await stopProcess(drill.registered)
    }
  }, 180_000)
})
