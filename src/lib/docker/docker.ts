import Dockerode from 'dockerode'

import {errorMessage, UserError} from '../errors.js'
import {within as settleWithin} from '../timeout.js'

const DOCKER_HINT =
  'start the Docker daemon (dockerd), or point --docker-host (or DOCKER_HOST) at it, e.g. unix:///var/run/docker.sock or tcp://127.0.0.1:2375'

/** One event (container, service, node, ...) from the Docker daemon's /events stream. */
export interface DockerEvent {
  Type?: string
  Action: string
  Actor: {ID: string; Attributes: Record<string, string>}
  time?: number
  timeNano?: number
}

/** Dockerode options for a --docker-host / DOCKER_HOST value; undefined host = dockerode's own defaults. */
export function dockerOptions(host: string | undefined): Dockerode.DockerOptions | undefined {
  if (!host) return undefined
  if (host.startsWith('unix://')) return {socketPath: host.slice('unix://'.length) || '/var/run/docker.sock'}
  if (host.startsWith('/')) return {socketPath: host}
  let url: URL
  try {
    url = new URL(host.includes('://') ? host : `tcp://${host}`)
  } catch {
    throw new UserError(`invalid Docker host "${host}"`, 'use unix:///path/to/docker.sock or tcp://host:port')
  }

  if (!['http:', 'https:', 'tcp:'].includes(url.protocol)) {
    throw new UserError(`unsupported Docker host "${host}"`, 'use unix:///path/to/docker.sock or tcp://host:port')
  }

  const protocol = url.protocol === 'https:' || url.port === '2376' ? 'https' : 'http'
  return {host: url.hostname.replaceAll(/^\[|\]$/g, ''), port: Number(url.port || 2375), protocol}
}

/** Where a client talks to, for messages. */
export function describeDocker(host: string | undefined): string {
  return host || process.env.DOCKER_HOST || 'unix:///var/run/docker.sock'
}

/** Resolves with the Docker call's value, or rejects naming the call after `ms`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return settleWithin(promise, ms, () => new Error(`${what}: no answer within ${ms} ms`))
}

/** A Docker client that has answered a ping; a one-line error naming the fix otherwise. */
export async function connectDocker(host: string | undefined, timeoutMs = 5000): Promise<Dockerode> {
  const options = dockerOptions(host)
  const docker = options ? new Dockerode(options) : new Dockerode()
  try {
    await within(docker.ping(), timeoutMs, 'ping')
  } catch (error) {
    throw new UserError(`cannot reach Docker at ${describeDocker(host)} (${errorMessage(error)})`, DOCKER_HINT)
  }

  return docker
}

/** A Docker object's HTTP status (404 for a container that is gone). */
export function statusOf(error: unknown): number | undefined {
  if (typeof error === 'object' && error !== null && 'statusCode' in error && typeof error.statusCode === 'number') {
    return error.statusCode
  }

  return undefined
}

export interface EventSubscription {
  /** Resolves when the stream ends or fails (daemon restart), with the reason. */
  readonly ended: Promise<string>
  close(): void
}

/** Subscribes to container events; each newline-delimited JSON object goes to `onEvent`. */
export function subscribeContainerEvents(
  docker: Dockerode,
  onEvent: (event: DockerEvent) => void,
  timeoutMs: number,
): Promise<EventSubscription> {
  return subscribeEvents(docker, ['container'], onEvent, timeoutMs)
}

/** Subscribes to the events of these object types (container, service, node, ...). */
export async function subscribeEvents(
  docker: Dockerode,
  types: Array<'container' | 'service' | 'node'>,
  onEvent: (event: DockerEvent) => void,
  timeoutMs: number,
): Promise<EventSubscription> {
  const stream = await within(docker.getEvents({filters: {type: types}}), timeoutMs, 'docker events')
  let buffer = ''
  let finish!: (reason: string) => void
  const ended = new Promise<string>((resolve) => {
    finish = resolve
  })
  stream.on('data', (chunk: Buffer | string) => {
    buffer += chunk.toString()
    let newline = buffer.indexOf('\n')
    while (newline !== -1) {
      const line = buffer.slice(0, newline).trim()
      buffer = buffer.slice(newline + 1)
      newline = buffer.indexOf('\n')
      if (line === '') continue
      const event = parseEvent(line)
      if (event) onEvent(event)
    }
  })
  stream.on('end', () => finish('the event stream ended'))
  stream.on('close', () => finish('the event stream closed'))
  stream.on('error', (error: unknown) => finish(`the event stream failed: ${errorMessage(error)}`))
  return {
    ended,
    close() {
      finish('closed')
      const destroyable = stream as NodeJS.ReadableStream & {destroy?: () => void}
      destroyable.destroy?.()
    },
  }
}

function parseEvent(line: string): DockerEvent | undefined {
  try {
    const raw = JSON.parse(line) as Partial<DockerEvent> & {status?: string; id?: string}
    const action = raw.Action ?? raw.status
    const id = raw.Actor?.ID ?? raw.id
    if (typeof action !== 'string' || typeof id !== 'string') return undefined
    return {
      Type: raw.Type,
      Action: action,
      Actor: {ID: id, Attributes: raw.Actor?.Attributes ?? {}},
      time: raw.time,
      timeNano: raw.timeNano,
    }
  } catch {
    return undefined
  }
}
