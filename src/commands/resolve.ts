import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'

import {SvcCommand} from '../base-command.js'
import {parsePickStrategy, pickInstance, PICK_STRATEGIES} from '../lib/balancer/pick.js'
import {renderInstances, renderTable} from '../lib/render/table.js'
import {defaultLocalDir} from '../lib/registry/spec.js'
import type {ServiceInstance, ServiceSummary} from '../lib/registry/types.js'
import {validateServiceName} from '../lib/registry/validate.js'
import {listServices, resolveInstances} from '../lib/resolve.js'
import path from 'node:path'

export default class Resolve extends SvcCommand<typeof Resolve> {
  static summary = 'Look up services, or the instances of one service.'
  static description = `Without NAME: every service with its instance counts. With NAME: its healthy (passing or warning) instances; --all shows every instance.
--pick prints one address:port (strategy: random [weighted by the "weight" meta], round-robin, first). Exit status 1 when there is no healthy instance.`

  static examples = [
    '<%= config.bin %> resolve',
    '<%= config.bin %> resolve web',
    '<%= config.bin %> resolve web --tag v2 --json',
    'curl http://$(<%= config.bin %> resolve web --pick)/',
  ]

  static enableJsonFlag = true

  static args = {
    name: Args.string({description: 'service name'}),
  }

  static flags = {
    tag: Flags.string({
      char: 't',
      description: 'only instances with this tag (repeatable: all must match)',
      multiple: true,
    }),
    all: Flags.boolean({description: 'include unhealthy instances'}),
    pick: Flags.string({
      description: `print one address:port [strategy: ${PICK_STRATEGIES.join(', ')}; default random]`,
      options: [...PICK_STRATEGIES],
    }),
  }

  async init(): Promise<void> {
    this.argv = withPickDefault(this.argv)
    await super.init()
  }

  async run(): Promise<ServiceInstance | ServiceInstance[] | ServiceSummary[] | string> {
    const {args, flags} = this
    const registry = await this.registry()
    if (args.name === undefined) {
      if (flags.pick) this.error('--pick needs a service name: svc resolve NAME --pick', {exit: 2})
      const services = await listServices(registry)
      if (!this.jsonEnabled()) {
        if (services.length === 0) this.warnLine(`no services registered on ${registry.description}`)
        else
          this.log(
            await renderTable(
              ['SERVICE', 'INSTANCES', 'PASSING'],
              services.map((s) => [s.name, String(s.instances), String(s.passing)]),
              Boolean(process.stdout.isTTY),
            ),
          )
      }

      return services
    }

    const service = validateServiceName(args.name)
    const instances = await resolveInstances(registry, service, {all: flags.all, tags: flags.tag})
    if (flags.pick) {
      const stateDir = path.join(path.dirname(defaultLocalDir()), 'state')
      const picked = (await pickInstance(instances, parsePickStrategy(flags.pick), stateDir))!
      const target = `${picked.address.includes(':') ? `[${picked.address}]` : picked.address}:${picked.port}`
      if (!this.jsonEnabled()) this.log(target)
      return picked
    }

    if (!this.jsonEnabled()) {
      this.log(await renderInstances(instances, Boolean(process.stdout.isTTY)))
    }

    return instances
  }
}

/** `--pick` takes an optional strategy: a bare `--pick` means random. */
export function withPickDefault(argv: string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    out.push(arg)
    if (arg === '--pick') {
      const next = argv[i + 1]
      if (next === undefined || !(PICK_STRATEGIES as readonly string[]).includes(next)) out.push('random')
    }
  }

  return out
}
