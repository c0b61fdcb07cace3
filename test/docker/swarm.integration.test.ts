import type {ChildProcess} from 'node:child_process'
import {mkdtempSync} from 'node:fs'
import http from 'node:http'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {allocatePorts} from '../../src/lib/cluster/ports.js'
import {type TestBackend, testBackends, uniqueService} from '../helpers/backends.js'
import {hasTestCluster} from '../helpers/clusters.js'
import {eventually, runCli, spawnCli, waitForExit, waitForOutput} from '../helpers/cli.js'
import {acquireDockerLock, docker, ensureTestImage, HTTPD_COMMAND} from '../helpers/docker.js'
import {endpoints, type RawInstance, rawInstances} from '../helpers/raw-instances.js'

/** Every wait is bounded: a Swarm task starts in ~1 s here, the agent follows within a pass. */
const WAIT_MS = 15_000
const RUN = `svcswarm-${Date.now().toString(36)}`

/** What `docker swarm init` made, so that afterAll undoes exactly that: the swarm, and the gateway bridge it adds. */
let initialized = false
let madeBridge = false
/** `svc agent --swarm` off a swarm, when the machine was outside one at the start. */
let refusal: Awaited<ReturnType<typeof runCli>> | undefined
let releaseLock: (() => void) | undefined
const created: string[] = []
/** How long the set-up and tear-down steps took, printed once: the routing mesh and swarm leave are slow here. */
const took: string[] = []
const timed = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
  const began = Date.now()
  try {
    return await fn()
  } finally {
    took.push(`${what} ${Date.now() - began} ms`)
  }
}

const agents: ChildProcess[] = []
const backends = testBackends((['local', 'etcd', 'consul'] as const).filter((b) => b === 'local' || hasTestCluster(b)))

async function swarmState(): Promise<{state: string; manager: boolean}> {
  const [state, manager] = (await docker(['info', '--format', '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}']))
    .trim()
    .split(' ')
  return {state: state ?? '', manager: manager === 'true'}
}

/** `docker service create`, detached, without a registry lookup (the image comes from `docker import`). */
async function createService(name: string, args: string[]): Promise<string> {
  const full = `${RUN}-${name}`
  created.push(full)
  // by image ID: Swarm then skips its pull attempt, which waits on a registry this machine cannot reach
  const image = await docker(['image', 'inspect', '--format', '{{.Id}}', await ensureTestImage()])
  await docker(['service', 'create', '-d', '--no-resolve-image', '--name', full, ...args, image, ...HTTPD_COMMAND])
  return full
}

/**
 * The IPv4 host port of each running task, as `docker service ps` shows them. Docker 20.10 may give a task's IPv6
 * binding another port (`*:32778->80/tcp,*:32776->80/tcp`): the first one listed is the IPv4 one.
 */
async function taskPorts(service: string): Promise<number[]> {
  const format = '{{.CurrentState}}|{{.Ports}}'
  const out = await docker(['service', 'ps', service, '--filter', 'desired-state=running', '--format', format])
  return out
    .split('\n')
    .filter((line) => line.startsWith('Running'))
    .flatMap((line) => {
      const first = /:(\d+)->80\/tcp/.exec(line)
      return first ? [Number(first[1])] : []
    })
    .sort((a, b) => a - b)
}

/** Waits until `count` tasks run with a published host port each; returns their 127.0.0.1 endpoints. */
async function running(service: string, count: number): Promise<string[]> {
  const ports = await eventually(
    async () => {
      const found = await taskPorts(service)
      return found.length === count ? found : undefined
    },
    WAIT_MS,
    200,
  )
  return endpoints(ports.map((port) => ({address: '127.0.0.1', port})))
}

/** Waits until every backend's own server holds exactly these endpoints for the service; returns what it holds. */
async function expectEverywhere(service: string, expected: string[]): Promise<RawInstance[][]> {
  return Promise.all(
    backends.map((backend) =>
      eventually(
        async () => {
          const held = await rawInstances(backend, service)
          return JSON.stringify(endpoints(held)) === JSON.stringify([...expected].sort()) ? held : undefined
        },
        WAIT_MS,
        100,
      ).catch(async (error: unknown) => {
        const held = endpoints(await rawInstances(backend, service))
        throw new Error(
          `${backend.name} ${service}: wanted ${expected.join(', ') || 'nothing'}, has ${held.join(', ') || 'nothing'} (${String(error)})`,
        )
      }),
    ),
  )
}

function get(endpoint: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = http.get(`http://${endpoint}/`, {timeout: 3000}, (response) => {
      let body = ''
      response.on('data', (d: Buffer) => {
        body += d.toString()
      })
      response.on('end', () => resolve(body))
    })
    request.on('timeout', () => request.destroy(new Error(`GET ${endpoint} timed out`)))
    request.on('error', reject)
  })
}

async function startAgent(backend: TestBackend): Promise<ChildProcess> {
  const args = ['agent', '--swarm', '--cleanup', '-b', backend.uri, '--hostname', `${RUN}-${backend.name}`, '--json']
  const child = spawnCli(args)
  agents.push(child)
  // 30 s: three agents start at once, on a machine whose load may be ten times its cores
  await waitForOutput(child, /"detail":"following Swarm services"/, 30_000).catch((error: unknown) => {
    throw new Error(`the agent on ${backend.name}: ${String(error)}`)
  })
  return child
}

async function stopAgent(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  child.kill('SIGTERM')
  await waitForExit(child, 20_000).catch(() => child.kill('SIGKILL'))
}

beforeAll(async () => {
  // the agent's daemon-restart test would take the swarm down with the daemon: hold the Docker lock throughout
  releaseLock = await acquireDockerLock()
  await ensureTestImage()
  const before = await swarmState()
  if (before.state === 'inactive') {
    const home = `local://${mkdtempSync(path.join(tmpdir(), 'svc-swarm-'))}`
    refusal = await timed('refusal', () => runCli(['agent', '--swarm', '-b', home]))
    madeBridge = (await docker(['network', 'ls', '-q', '--filter', 'name=^docker_gwbridge$'])) === ''
    await timed('swarm init', () => docker(['swarm', 'init', '--advertise-addr', '127.0.0.1']))
    initialized = true
  } else if (!before.manager) {
    throw new Error(`this Docker node is in a swarm (${before.state}) but not a manager: the test needs a manager`)
  }

  await timed('agents up', () => Promise.all(backends.map((backend) => startAgent(backend))))
}, 120_000)

afterAll(async () => {
  try {
    await timed('agents stopped', () => Promise.allSettled(agents.map((child) => stopAgent(child))))
    if (created.length > 0) await docker(['service', 'rm', ...created], 60_000).catch(() => '')
    // leave only the swarm this test made; one the machine was in stays
    if (initialized) await timed('swarm leave', () => docker(['swarm', 'leave', '--force'], 60_000))
    if (madeBridge) await docker(['network', 'rm', 'docker_gwbridge']).catch(() => '')
  } finally {
    releaseLock?.()
    console.error(`[swarm test] ${took.join(', ')}`)
  }
}, 120_000)

describe('svc agent --swarm', () => {
  it('refuses a node that is not a swarm manager, naming docker swarm init (when the machine starts outside a swarm)', () => {
    if (!refusal) return
    expect(refusal.code).toBe(1)
    const lines = refusal.stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/--swarm needs a swarm manager.*not in a swarm.*docker swarm init/)
  })

  it('host mode: registers each task, follows scale 1 -> 3 -> 1, an update, and the removal', async () => {
    const name = uniqueService('swarm-web')
    const service = await createService('web', [
      '--label',
      `SERVICE_NAME=${name}`,
      '--container-label',
      'SERVICE_TAGS=v1',
      '--publish',
      'mode=host,target=80',
    ])

    const one = await running(service, 1)
    const [held] = await expectEverywhere(name, one)
    expect(held![0]!.tags).toEqual(['v1'])
    expect(await get(one[0]!)).toContain('svc test')

    await docker(['service', 'scale', '-d', `${service}=3`])
    const three = await running(service, 3)
    await expectEverywhere(name, three)
    for (const endpoint of three) expect(await get(endpoint)).toContain('svc test')

    await docker(['service', 'scale', '-d', `${service}=1`])
    const left = await running(service, 1)
    await expectEverywhere(name, left)

    // a service label wins over the container label, and changes the instance in place
    await docker(['service', 'update', '-d', '--label-add', 'SERVICE_TAGS=v2', service])
    await Promise.all(
      backends.map((backend) =>
        eventually(
          async () => {
            const now = await rawInstances(backend, name)
            return now.length === 1 && now[0]!.tags.join(',') === 'v2' ? now : undefined
          },
          WAIT_MS,
          100,
        ),
      ),
    )

    // a new environment replaces the task: the new one's port comes, the old one's goes
    await docker(['service', 'update', '-d', '--env-add', 'RELEASE=2', service])
    const replaced = await eventually(
      async () => {
        const ports = await running(service, 1)
        return ports[0] === left[0] ? undefined : ports
      },
      WAIT_MS,
      200,
    )
    const [after] = await expectEverywhere(name, replaced)
    expect(after![0]!.tags).toEqual(['v2'])

    await docker(['service', 'rm', service])
    await expectEverywhere(name, [])
  }, 90_000)

  it('ingress: one instance at the node address and published port while a task runs, removed with the service', async () => {
    const name = uniqueService('swarm-api')
    const [port] = await allocatePorts(1)
    const service = await createService('api', [
      '--label',
      `SERVICE_NAME=${name}`,
      '--publish',
      `published=${port},target=80`,
    ])
    // the routing mesh may take tens of seconds to answer here (see docs/swarm.md): the test does not wait for it
    await expectEverywhere(name, [`127.0.0.1:${port}`])
    await docker(['service', 'rm', service])
    await expectEverywhere(name, [])
  }, 60_000)
})
