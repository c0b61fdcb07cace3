import * as Args from '@oclif/core/args'

import {registerFlags, registerRequest} from '../command-flags/register.js'
import {planRegistration} from '../lib/register-plan.js'
import {runRegistration} from '../lib/register.js'
import type {ServiceInstance} from '../lib/registry/types.js'
import {RegistryCommand} from '../registry-command.js'

export default class Register extends RegistryCommand<typeof Register> {
  static summary = 'Register one instance and keep it alive until interrupted.'
  static description = `Stays in the foreground, keeping the instance alive (heartbeat, lease keep-alive or ephemeral session, by backend) and deregisters it on SIGINT or SIGTERM.
With --check-http or --check-tcp, Consul runs the check natively; on other backends svc runs it and publishes the health.
--json: one JSON object a line (registered, lost, restored, deregistered; see docs/json.md); with --dry-run, the instance.`

  static examples = [
    '<%= config.bin %> register web --port 8080',
    '<%= config.bin %> register web --port 8080 --address 10.0.0.5 --tag v2 --meta version=2.1 -b consul://127.0.0.1:8500',
    '<%= config.bin %> register api --port 9000 --check-http /health --check-interval 5s -b etcd',
  ]

  static enableJsonFlag = true
  static args = {name: Args.string({description: 'service name (letters, digits, -, _, .)', required: true})}
  static flags = registerFlags

  async run(): Promise<ServiceInstance | undefined> {
    const {args, flags} = this
    const registry = await this.registry()
    const {check, instance} = planRegistration(registerRequest(args.name, flags, registry.kind === 'local'))
    const where = `${instance.address}:${instance.port} on ${registry.description}`
    if (flags['dry-run']) {
      if (!this.jsonEnabled()) this.log(`would register ${instance.service} ${instance.id} at ${where}`)
      return instance
    }

    await runRegistration({
      registry,
      // the health is the backend's or the check's to set, not the validation's default
      input: {...instance, health: undefined},
      check,
      ttlMs: flags.ttl,
      signal: this.untilSignal(),
      log: (line) => this.warnLine(line),
      events: this.jsonEnabled() ? (event) => this.jsonLine(event) : undefined,
      onRegistered: (registered) => {
        if (!this.jsonEnabled()) this.log(`registered ${registered.service} ${registered.id} at ${where}`)
        this.warnLine('keeping it alive; Ctrl-C or SIGTERM deregisters it')
      },
    })
    this.warnLine(`deregistered ${instance.service}`)
    return undefined
  }
}
