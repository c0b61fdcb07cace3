import * as Args from '@oclif/core/args'
import path from 'node:path'

import {resolveFlags} from '../command-flags/resolve.js'
import {parsePickStrategy} from '../lib/balancer/pick.js'
import {UserError} from '../lib/errors.js'
import {renderInstances, renderServices} from '../lib/render/table.js'
import {defaultLocalDir} from '../lib/registry/spec.js'
import type {ServiceInstance, ServiceSummary} from '../lib/registry/types.js'
import {dialTarget, listServices, pickOne, resolveInstances, withPickDefault} from '../lib/resolve.js'
import {RegistryCommand} from '../registry-command.js'

export default class Resolve extends RegistryCommand<typeof Resolve> {
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
  static args = {name: Args.string({description: 'service name'})}
  static flags = resolveFlags

  async init(): Promise<void> {
    this.argv = withPickDefault(this.argv)
    await super.init()
  }

  async run(): Promise<ServiceInstance | ServiceInstance[] | ServiceSummary[]> {
    const {args, flags} = this
    if (args.name === undefined && flags.pick)
      throw new UserError('--pick needs a service name', 'svc resolve NAME --pick')
    const registry = await this.registry()
    if (args.name === undefined) {
      const services = await listServices(registry)
      if (this.jsonEnabled()) return services
      if (services.length === 0) this.warnLine(`no services registered on ${registry.description}`)
      else this.log(await renderServices(services, Boolean(process.stdout.isTTY)))
      return services
    }

    const instances = await resolveInstances(registry, args.name, {all: flags.all, tags: flags.tag})
    if (flags.pick) {
      const stateDir = path.join(path.dirname(defaultLocalDir()), 'state')
      const picked = await pickOne(instances, parsePickStrategy(flags.pick), stateDir)
      if (!this.jsonEnabled()) this.log(dialTarget(picked))
      return picked
    }

    if (!this.jsonEnabled()) this.log(await renderInstances(instances, Boolean(process.stdout.isTTY)))
    return instances
  }
}
