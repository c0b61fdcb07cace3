import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'

import {SvcCommand} from '../base-command.js'
import {durationFlag, portFlag} from '../flags.js'
import {checkUrl, defaultAddress} from '../lib/net.js'
import {runRegistration} from '../lib/register.js'
import {parseMeta, validateServiceName} from '../lib/registry/validate.js'

export default class Register extends SvcCommand<typeof Register> {
  static summary = 'Register one instance and keep it alive until interrupted.'
  static description = `Stays in the foreground, keeping the instance alive (heartbeat, lease keep-alive or ephemeral session, by backend) and deregisters it on SIGINT or SIGTERM.
With --check-http or --check-tcp, Consul runs the check natively; on other backends svc runs it and publishes the health.`

  static examples = [
    '<%= config.bin %> register web --port 8080',
    '<%= config.bin %> register web --port 8080 --address 10.0.0.5 --tag v2 --meta version=2.1 -b consul://127.0.0.1:8500',
    '<%= config.bin %> register api --port 9000 --check-http /health --check-interval 5s -b etcd',
  ]

  static enableJsonFlag = true

  static args = {
    name: Args.string({description: 'service name (letters, digits, -, _, .)', required: true}),
  }

  static flags = {
    port: portFlag({char: 'p', description: 'port the instance listens on', required: true}),
    address: Flags.string({
      char: 'a',
      description:
        "address to advertise [default: 127.0.0.1 on the local backend, else this host's first non-loopback IPv4]",
    }),
    id: Flags.string({description: 'instance id [default: <name>:<address>:<port>]'}),
    tag: Flags.string({char: 't', description: 'tag (repeatable)', multiple: true}),
    meta: Flags.string({char: 'm', description: 'metadata KEY=VALUE (repeatable)', multiple: true}),
    'check-http': Flags.string({description: 'HTTP health check: a path on the instance (/health) or a full URL'}),
    'check-tcp': Flags.boolean({description: 'TCP health check: connect to address:port', exclusive: ['check-http']}),
    'check-interval': durationFlag({description: 'how often the check runs', default: 10_000}),
    'check-timeout': durationFlag({description: 'check timeout', default: 5000}),
    ttl: durationFlag({
      description:
        'how long the instance outlives its last heartbeat, at least 1s [default: local 15s, etcd 10s, zk 10s, consul 10s]',
    }),
    'dry-run': Flags.boolean({description: 'validate and print the instance, but do not register it'}),
  }

  async run(): Promise<void> {
    const {args, flags} = this
    validateServiceName(args.name)
    const meta = parseMeta(flags.meta ?? [])
    const registry = await this.registry()
    const address = flags.address ?? defaultAddress(registry.kind === 'local')
    const check = this.checkSpec(address, flags.port)
    const input = {service: args.name, id: flags.id, address, port: flags.port, tags: flags.tag, meta}
    if (flags['dry-run']) {
      if (this.jsonEnabled()) this.logJson(input)
      else this.log(`would register ${args.name} at ${address}:${flags.port} on ${registry.description}`)
      return
    }

    const controller = new AbortController()
    const stop = (): void => controller.abort()
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
    try {
      await runRegistration({
        registry,
        input,
        check,
        ttlMs: flags.ttl,
        signal: controller.signal,
        log: (line) => this.warnLine(line),
        onRegistered: (instance) => {
          if (this.jsonEnabled()) this.logJson(instance)
          else
            this.log(
              `registered ${instance.service} ${instance.id} at ${instance.address}:${instance.port} on ${registry.description}`,
            )
          this.warnLine('keeping it alive; Ctrl-C or SIGTERM deregisters it')
        },
      })
      this.warnLine(`deregistered ${args.name}`)
    } finally {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
    }
  }

  private checkSpec(address: string, port: number) {
    const {flags} = this
    const host = address.includes(':') ? `[${address}]` : address
    const common = {intervalMs: flags['check-interval'], timeoutMs: flags['check-timeout']}
    if (flags['check-http']) {
      const target = flags['check-http']
      const url = /^https?:\/\//.test(target)
        ? target
        : `http://${host}:${port}${target.startsWith('/') ? '' : '/'}${target}`
      return {...common, http: checkUrl(url)}
    }

    if (flags['check-tcp']) return {...common, tcp: `${host}:${port}`}
    return undefined
  }
}
