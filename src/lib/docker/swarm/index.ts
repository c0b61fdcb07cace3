import type Dockerode from 'dockerode'

import type {Registry} from '../../registry/types.js'
import type {AgentOptions} from '../types.js'
import {SwarmFollower} from './follower.js'
import {assertSwarmManager} from './source.js'

export {SwarmFollower} from './follower.js'

/** `svc agent --swarm`: a follower of the swarm's services, once the daemon is known to be a manager. */
export async function followSwarm(deps: {
  registry: Registry
  docker: Dockerode
  options: AgentOptions
  where: string
}): Promise<SwarmFollower> {
  await assertSwarmManager(deps.docker, deps.where, 5000)
  return new SwarmFollower(deps)
}

/** Runs each loop until the signal aborts; when one fails the others stop too, and its error is thrown. */
export async function runTogether(
  signal: AbortSignal,
  loops: ReadonlyArray<(signal: AbortSignal) => Promise<void>>,
): Promise<void> {
  const inner = new AbortController()
  const abort = (): void => inner.abort()
  signal.addEventListener('abort', abort, {once: true})
  if (signal.aborted) inner.abort()
  try {
    const results = await Promise.allSettled(
      loops.map((loop) =>
        loop(inner.signal).catch((error: unknown) => {
          inner.abort()
          throw error
        }),
      ),
    )
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed) throw failed.reason
  } finally {
    signal.removeEventListener('abort', abort)
  }
}
