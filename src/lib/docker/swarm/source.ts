import type Dockerode from 'dockerode'

import {UserError} from '../../errors.js'
import {within} from '../docker.js'

/** A published port as Swarm reports it; `PublishedPort` is missing on a host-mode port Docker picks per task. */
export interface SwarmPort {
  Protocol?: string
  TargetPort?: number
  PublishedPort?: number
  PublishMode?: string
}

/** The fields of a Swarm service the agent reads, as Docker may send them: any of them missing. */
export interface SwarmService {
  ID?: string
  Spec?: {
    Name?: string
    Labels?: Record<string, string>
    Mode?: {Replicated?: {Replicas?: number}; Global?: object}
    TaskTemplate?: {ContainerSpec?: {Image?: string; Labels?: Record<string, string>; Env?: string[]}}
  }
  Endpoint?: {Ports?: SwarmPort[]}
}

export interface SwarmTask {
  ID?: string
  ServiceID?: string
  NodeID?: string
  Slot?: number
  DesiredState?: string
  Status?: {State?: string; ContainerStatus?: {ContainerID?: string}; PortStatus?: {Ports?: SwarmPort[]}}
}

export interface SwarmNode {
  ID?: string
  Description?: {Hostname?: string}
  Status?: {State?: string; Addr?: string}
}

/** The swarm at one moment: every service, the tasks meant to run, every node. */
export interface SwarmState {
  services: SwarmService[]
  tasks: SwarmTask[]
  nodes: SwarmNode[]
}

interface SwarmInfo {
  Swarm?: {LocalNodeState?: string; ControlAvailable?: boolean}
}

/** Throws a one-line error (exit 1) unless the daemon is a swarm manager: only managers can list services and tasks. */
export async function assertSwarmManager(docker: Dockerode, where: string, timeoutMs: number): Promise<void> {
  const info = (await within(docker.info() as Promise<unknown>, timeoutMs, 'docker info')) as SwarmInfo
  const state = info.Swarm?.LocalNodeState ?? 'inactive'
  if (state === 'active' && info.Swarm?.ControlAvailable === true) return
  const what = state === 'active' ? 'a swarm worker, not a manager' : `not in a swarm (${state})`
  throw new UserError(
    `--swarm needs a swarm manager, and the Docker node at ${where} is ${what}`,
    'run `docker swarm init` there (or join the swarm as a manager), or point --docker-host at a manager',
    1,
  )
}

/** Lists services, running-or-starting tasks and nodes, each call bounded. */
export async function readSwarm(docker: Dockerode, timeoutMs: number): Promise<SwarmState> {
  const [services, tasks, nodes] = await Promise.all([
    within(docker.listServices() as Promise<unknown>, timeoutMs, 'docker service ls'),
    // a task being replaced has desired state shutdown at once: its instance goes before its container stops
    within(
      docker.listTasks({filters: {'desired-state': ['running']}}) as Promise<unknown>,
      timeoutMs,
      'docker task ls',
    ),
    within(docker.listNodes() as Promise<unknown>, timeoutMs, 'docker node ls'),
  ])
  return {services: list<SwarmService>(services), tasks: list<SwarmTask>(tasks), nodes: list<SwarmNode>(nodes)}
}

/** Docker's JSON arrays, with anything that is not an object dropped. */
function list<T>(value: unknown): T[] {
  if (!Array.isArray(value)) return []
  return (value as unknown[]).filter((item): item is T => typeof item === 'object' && item !== null)
}
