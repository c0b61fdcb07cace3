import * as Flags from '@oclif/core/flags'
import {hostname} from 'node:os'

import {SvcCommand} from '../base-command.js'
import {durationFlag} from '../flags.js'
import {Agent} from '../lib/docker/agent.js'
import {connectDocker} from '../lib/docker/docker.js'
import {formatAgentLogLine, isActionEvent} from '../lib/docker/format.js'
import type {AgentEvent, AgentOptions} from '../lib/docker/types.js'
import {UserError} from '../lib/errors.js'
import {defaultAddress} from '../lib/net.js'
import {validateTag} from '../lib/registry/validate.js'
import {isInteractive} from '../lib/tty.js'

export default class AgentCommand extends SvcCommand<typeof AgentCommand> {
  static summary = 'Register the published ports of running Docker containers, and follow Docker events.'
  static description = `Registrator's semantics (SERVICE_* env and labels, labels win; one instance per published port; ids <hostname>:<container>:<port>), and more: cleanup on every backend, reconnection when the Docker daemon restarts, pause/unpause and HEALTHCHECK status as instance health, and HTTP/TCP checks run by the agent on backends without native checks.
On a terminal it shows a live view; otherwise one log line per action on stderr (--json: every event, Docker event lag samples included, as one JSON object per line on stdout).
die, stop and destroy deregister; so does a kill event with SIGKILL, at once; a kill with another signal only makes the agent look at the container again (docker kill -s HUP does not stop it).`

  static examples = [
    '<%= config.bin %> agent -b zk://127.0.0.1:2181',
    '<%= config.bin %> agent -b consul --cleanup --resync 60 --tags docker',
    '<%= config.bin %> agent -b etcd --internal --deregister on-success --json',
  ]

  static enableJsonFlag = true

  static flags = {
    'docker-host': Flags.string({
      description: 'Docker daemon: unix:///var/run/docker.sock or tcp://host:port',
      env: 'DOCKER_HOST',
    }),
    ip: Flags.string({description: 'address to advertise for every published port'}),
    internal: Flags.boolean({description: "register exposed ports at the container's own address"}),
    explicit: Flags.boolean({description: 'register only containers that set SERVICE_NAME or SERVICE_<port>_NAME'}),
    tags: Flags.string({description: 'tags added to every instance, comma-separated'}),
    network: Flags.string({description: 'on multi-network containers, the network whose address to use'}),
    resync: durationFlag({description: 're-list containers and reconcile this often (seconds, or 30s, 5m)'}),
    cleanup: Flags.boolean({
      description: "at start-up and on each resync, remove this host's instances whose container no longer runs",
    }),
    deregister: Flags.string({
      description:
        'always: deregister containers that exit; on-success: only those exiting with 0, the others stay, critical',
      options: ['always', 'on-success'],
      default: 'always',
    }),
    ttl: durationFlag({description: 'liveness bound of each registration (heartbeat, lease, session, TTL check)'}),
    'ttl-refresh': durationFlag({
      description:
        'how often liveness is refreshed (local heartbeat, Consul TTL check, etcd lease keep-alive); default a third of the TTL, must be below it; refused on ZooKeeper, whose client pings its session by itself',
    }),
    'retry-attempts': Flags.integer({
      description: 'retries of the backend connection at start-up; -1 = forever [default: 0]',
      default: 0,
    }),
    'retry-interval': Flags.integer({description: 'milliseconds between those attempts', default: 2000, min: 1}),
    hostname: Flags.string({
      description: "this host in instance ids and for --cleanup [default: the machine's host name]",
    }),
    metrics: Flags.string({description: 'serve Prometheus metrics at HOST:PORT'}),
  }

  async run(): Promise<void> {
    const options = this.agentOptions()
    const registry = await this.registry()
    const docker = await connectDocker(this.flags['docker-host'])
    const interactive = this.interactive()
    const agent = new Agent({
      registry,
      docker,
      options,
      hostAddress: this.flags.ip ?? defaultAddress(registry.kind === 'local'),
      // on a terminal the live view shows what matters; stray stderr lines would tear it
      log: interactive ? () => {} : (message) => this.warnLine(message),
    })
    const controller = new AbortController()
    const stop = (): void => controller.abort()
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
    let metrics: Awaited<ReturnType<AgentCommand['serveMetrics']>> | undefined
    try {
      if (this.flags.metrics) metrics = await this.serveMetrics(agent, this.flags.metrics)
      if (interactive) {
        // ink and react load only here, on a terminal
        const {renderAgentView} = await import('../lib/ui/agent-view.js')
        const running = agent.start(controller.signal).finally(stop)
        // its failure is thrown below, once the view has unmounted
        running.catch(() => {})
        await renderAgentView(agent, {backend: registry.description, signal: controller.signal})
        stop()
        await running
      } else {
        const json = this.jsonEnabled()
        agent.on((event) => this.print(event, json))
        await agent.start(controller.signal)
      }
    } finally {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
      await metrics?.close()
    }
  }

  private agentOptions(): AgentOptions {
    const {flags} = this
    if (flags['ttl-refresh'] !== undefined && flags.ttl === undefined) {
      throw new UserError('--ttl-refresh needs --ttl', 'give the TTL it refreshes, e.g. --ttl 30s --ttl-refresh 10s')
    }

    if (flags.ttl !== undefined && flags['ttl-refresh'] !== undefined && flags['ttl-refresh'] >= flags.ttl) {
      throw new UserError(
        '--ttl-refresh must be below --ttl',
        'refresh at a third of the TTL, e.g. --ttl 30 --ttl-refresh 10',
      )
    }

    if (flags['retry-attempts'] < -1) {
      throw new UserError('--retry-attempts must be -1 (forever) or more', 'use -1, 0 or a positive count')
    }

    const tags = (flags.tags ?? '')
      .split(',')
      .map((t) => t.trim())
      .filter((t) => t !== '')
      .map((t) => validateTag(t))
    return {
      hostname: flags.hostname ?? hostname(),
      ip: flags.ip,
      internal: flags.internal,
      explicit: flags.explicit,
      tags,
      network: flags.network,
      resyncMs: flags.resync,
      cleanup: flags.cleanup,
      deregister: flags.deregister === 'on-success' ? 'on-success' : 'always',
      ttlMs: flags.ttl,
      ttlRefreshMs: flags['ttl-refresh'],
      retryAttempts: flags['retry-attempts'],
      retryIntervalMs: flags['retry-interval'],
    }
  }

  private interactive(): boolean {
    return isInteractive() && !this.jsonEnabled()
  }

  private async serveMetrics(agent: Agent, where: string) {
    const {parseHostPort, serveAgentMetrics} = await import('../lib/metrics/agent.js')
    const {host, port} = parseHostPort(where)
    const server = await serveAgentMetrics(agent, host, port)
    this.warnLine(`metrics at ${server.url}`)
    return server
  }

  private print(event: AgentEvent, json: boolean): void {
    if (json) process.stdout.write(`${JSON.stringify(event)}\n`)
    else if (isActionEvent(event)) process.stderr.write(`${formatAgentLogLine(event)}\n`)
  }
}
