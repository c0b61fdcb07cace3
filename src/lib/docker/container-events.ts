import type {DockerEvent} from './docker.js'

/** What one container event asks of the agent. */
export type ContainerAction =
  /** Read the container's state as Docker reports it now: idempotent, so events during a sync are harmless. */
  | {kind: 'reconcile'}
  | {kind: 'exited'; exitCode: number | undefined}
  | {kind: 'drop'; reason: string}
  | {kind: 'health'; status: 'healthy' | 'unhealthy'}

/** The agent's action for a Docker container event; undefined for events it does not follow. */
export function containerAction(event: DockerEvent): ContainerAction | undefined {
  const action = event.Action
  switch (action) {
    case 'start':
    case 'unpause':
    case 'pause':
    case 'rename':
    case 'stop': {
      return {kind: 'reconcile'}
    }

    case 'die': {
      const code = Number(event.Actor.Attributes.exitCode ?? Number.NaN)
      return {kind: 'exited', exitCode: Number.isNaN(code) ? undefined : code}
    }

    case 'destroy': {
      return {kind: 'drop', reason: 'container removed'}
    }

    case 'health_status: healthy':
    case 'health_status: unhealthy': {
      return {kind: 'health', status: action.endsWith('unhealthy') ? 'unhealthy' : 'healthy'}
    }

    case 'kill': {
      // SIGKILL cannot be caught: the instance goes now, not when `die` follows. Other signals may be handled
      // (docker kill -s HUP reloads): the container's state decides, and a deadly one is followed by `die`.
      return isSigkill(event.Actor.Attributes.signal) ? {kind: 'exited', exitCode: 137} : {kind: 'reconcile'}
    }

    default: {
      return undefined
    }
  }
}

export function isSigkill(signal: string | undefined): boolean {
  return signal !== undefined && /^(9|(sig)?kill)$/i.test(signal.trim())
}
