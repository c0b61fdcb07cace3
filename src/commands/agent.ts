import {agentFlags} from '../command-flags/agent.js'
import {swarmFlags} from '../command-flags/swarm.js'
import {runAgent} from '../lib/docker/run.js'
import {isInteractive} from '../lib/tty.js'
import {RegistryCommand} from '../registry-command.js'

export default class AgentCommand extends RegistryCommand<typeof AgentCommand> {
  static summary = 'Register the published ports of running Docker containers, and follow Docker events.'
  static description = `Registrator's semantics (SERVICE_* env and labels, labels win; one instance per published port; ids <hostname>:<container>:<port>), and more: cleanup on every backend, reconnection when the Docker daemon restarts, pause/unpause and HEALTHCHECK status as instance health, and HTTP/TCP checks run by the agent on backends without native checks.
On a terminal it shows a live view; otherwise one log line per action on stderr (--json: every event, Docker event lag samples included, as one JSON object per line on stdout; see docs/json.md).
die, stop and destroy deregister; so does a kill event with SIGKILL, at once; a kill with another signal only makes the agent look at the container again (docker kill -s HUP does not stop it).
--swarm, on a swarm manager: Swarm services' published ports too (ingress: one instance per ready node; host mode: one per task), from the service's SERVICE_* labels; see docs/swarm.md.
Coming from registrator: the registry is --backend URI (not an argument), and long flags take two dashes (--internal).`

  static examples = [
    '<%= config.bin %> agent -b zk://127.0.0.1:2181',
    '<%= config.bin %> agent -b consul --cleanup --resync 60s --tags docker',
    '<%= config.bin %> agent -b etcd --internal --deregister on-success --json',
    '<%= config.bin %> agent -b consul --swarm --cleanup',
  ]

  static enableJsonFlag = true
  static flags = {...agentFlags, ...swarmFlags}

  async run(): Promise<void> {
    const signal = this.untilSignal()
    await runAgent({
      registry: () => this.registry(),
      flags: this.flags,
      interactive: isInteractive() && !this.jsonEnabled(),
      json: this.jsonEnabled(),
      signal,
      log: (line) => this.warnLine(line),
      skydns: this.flags.skydns
        ? {spec: await this.backendSpec(), prefix: this.flags['skydns-prefix'], domain: this.flags['skydns-domain']}
        : undefined,
    })
  }
}
