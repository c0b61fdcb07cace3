import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {locateTarget, restartTarget, stopTarget} from '../../src/lib/chaos/targets.js'
import {acquireDockerLock, docker, TestContainers} from '../helpers/docker.js'

const containers = new TestContainers('svcchaostgt')
const state = (name: string): Promise<string> => docker(['inspect', '--format', '{{.State.Status}}', name])

let releaseDocker: (() => void) | undefined

beforeAll(async () => {
  // no daemon restart of another test file while these containers run
  releaseDocker = await acquireDockerLock()
}, 200_000)

afterAll(async () => {
  await containers.cleanup()
  releaseDocker?.()
}, 60_000)

describe('a container that publishes a port, as a drill target', () => {
  it('is found by its host port, and is paused, resumed, killed and started again', async () => {
    const container = await containers.run({name: 'member'})
    const port = await containers.hostPort(container)
    const target = await locateTarget('127.0.0.1', port)
    expect(target).toMatchObject({kind: 'container', id: container.id, name: container.name})

    await stopTarget(target, 'SIGSTOP')
    expect(await state(container.name)).toBe('paused')
    expect(await restartTarget(target, 'SIGSTOP')).toEqual({how: 'docker unpause'})
    expect(await state(container.name)).toBe('running')

    await stopTarget(target, 'SIGKILL')
    expect(await state(container.name)).toBe('exited')
    expect(await restartTarget(target, 'SIGKILL')).toEqual({how: 'docker start'})
    expect(await state(container.name)).toBe('running')
    // the published port may change on a restart; the container is still the one found by it
    expect(await locateTarget('127.0.0.1', await containers.hostPort(container))).toMatchObject({id: container.id})
  })

  it('is never confused with another address', async () => {
    await expect(locateTarget('192.0.2.10', 80)).rejects.toThrow(/is not an address of this machine/)
  })
})
