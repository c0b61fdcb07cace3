import {hostname} from 'node:os'

import {defaultAddress} from '../net.js'
import type {BackendSpec} from '../registry/spec.js'
import type {Registry} from '../registry/types.js'
import {Agent} from './agent.js'
import {connectDocker, describeDocker} from './docker.js'
import {agentStreamEvent, formatAgentLogLine, isActionEvent} from './format.js'
import type {AgentEvent} from './types.js'
import {agentOptions, type AgentFlagValues} from './options.js'
import {followSwarm, runTogether} from './swarm/index.js'

export interface AgentRun {
  /** Opened once the flags are checked. */
  registry: () => Promise<Registry>
  flags: Omit<AgentFlagValues, 'hostname'> & {
    hostname?: string
    'docker-host'?: string
    metrics?: string
    swarm?: boolean
  }
  /** A live view on the terminal; else log lines on stderr, or NDJSON on stdout with `json`. */
  interactive: boolean
  json: boolean
  signal: AbortSignal
  log: (line: string) => void
  /** --skydns: also write the SkyDNS layout CoreDNS's etcd plugin reads (src/lib/skydns). */
  skydns?: {spec: BackendSpec; prefix: string; domain: string}
}

/** Runs the agent until the signal aborts: the live view, log lines or NDJSON events, and metrics when asked. */
export async function runAgent(run: AgentRun): Promise<void> {
  const {flags} = run
  const options = {...agentOptions({...flags, hostname: flags.hostname ?? hostname()}), swarm: flags.swarm === true}
  // before the registry: --skydns on another backend is refused at once
  const skydns = run.skydns && (await import('../skydns/index.js')).openSkyDns(run.skydns, run.log)
  const registry = await run.registry()
  const docker = await connectDocker(flags['docker-host'])
  const where = describeDocker(flags['docker-host'])
  const swarm = options.swarm ? await followSwarm({registry, docker, options, where}) : undefined
  const follow = (signal: AbortSignal): Promise<void> =>
    runTogether(signal, swarm ? [(s) => agent.start(s), (s) => swarm.start(s)] : [(s) => agent.start(s)])
  const agent = new Agent({
    registry,
    docker,
    options,
    hostAddress: flags.ip ?? defaultAddress(registry.kind === 'local'),
    // on a terminal the live view shows what matters; stray stderr lines would tear it
    log: run.interactive ? () => {} : run.log,
  })
  skydns?.follow((listener) => agent.on(listener))
  const metrics = flags.metrics === undefined ? undefined : await serveMetrics(agent, flags.metrics, run.log)
  try {
    if (!run.interactive) {
      const print = (event: AgentEvent): void => {
        if (run.json) process.stdout.write(`${JSON.stringify(agentStreamEvent(event))}\n`)
        else if (isActionEvent(event)) process.stderr.write(`${formatAgentLogLine(event)}\n`)
      }

      agent.on(print)
      swarm?.on(print)
      await follow(run.signal)
      return
    }

    // ink and react load only here, on a terminal
    const {renderAgentView} = await import('../ui/agent-view.js')
    // the view ends with the signal, or ends the agent when the user quits it
    const view = new AbortController()
    run.signal.addEventListener('abort', () => view.abort(), {once: true})
    const {signal} = view
    const running = follow(signal).finally(() => view.abort())
    // its failure is thrown below, once the view has unmounted
    running.catch(() => {})
    await renderAgentView(agent, {backend: registry.description, signal})
    view.abort()
    await running
  } finally {
    await metrics?.close()
    await skydns?.close()
  }
}

async function serveMetrics(agent: Agent, where: string, log: (line: string) => void) {
  const {parseHostPort, serveAgentMetrics} = await import('../metrics/agent.js')
  const {host, port} = parseHostPort(where)
  const server = await serveAgentMetrics(agent, host, port)
  log(`metrics at ${server.url}`)
  return server
}
