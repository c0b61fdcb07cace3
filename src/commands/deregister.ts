import * as Args from '@oclif/core/args'

import {NotFoundError} from '../lib/errors.js'
import {removalNotice} from '../lib/registry/removal.js'
import type {Removal} from '../lib/registry/types.js'
import {validateInstanceId, validateServiceName} from '../lib/registry/validate.js'
import {RegistryCommand} from '../registry-command.js'

export default class Deregister extends RegistryCommand<typeof Deregister> {
  static summary = 'Remove one instance from the registry.'
  static examples = [
    '<%= config.bin %> deregister web web:127.0.0.1:8080',
    '<%= config.bin %> deregister web 10.0.0.5:8080 -b zk://zk1:2181,zk2:2181',
  ]

  static enableJsonFlag = true

  static args = {
    name: Args.string({description: 'service name', required: true}),
    id: Args.string({description: 'instance id (see `svc resolve NAME --all`)', required: true}),
  }

  async run(): Promise<{service: string; id: string; deregistered: boolean; owner?: Removal['owner']}> {
    const service = validateServiceName(this.args.name)
    const id = validateInstanceId(this.args.id)
    const registry = await this.registry()
    const removal = await registry.deregister(service, id)
    if (!removal.removed) {
      throw new NotFoundError(
        `no instance "${id}" of service "${service}" on ${registry.description}`,
        `list the ids with: svc resolve ${service} --all`,
      )
    }

    const notice = removalNotice(service, id, removal)
    if (notice) this.warnLine(notice)
    if (!this.jsonEnabled()) this.log(`deregistered ${service} ${id}`)
    return {service, id, deregistered: true, ...(removal.owner ? {owner: removal.owner} : {})}
  }
}
