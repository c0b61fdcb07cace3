import * as Flags from '@oclif/core/flags'

import {SvcCommand} from '../../base-command.js'
import {clusterDown, type ClusterDownResult} from '../../lib/cluster/named.js'
import {plural} from '../../lib/text.js'

export default class ClusterDown extends SvcCommand<typeof ClusterDown> {
  static summary = 'Stop a local cluster and remove its data.'
  static description = `Stops every member (SIGTERM, SIGKILL after 10 s) and removes the members' data, logs and the manifest. Without --name: the only cluster there is.`

  static examples = ['<%= config.bin %> cluster down', '<%= config.bin %> cluster down --name zk5']

  static enableJsonFlag = true

  static flags = {
    name: Flags.string({description: 'cluster name [default: the only cluster]'}),
  }

  async run(): Promise<ClusterDownResult> {
    const result = await clusterDown(this.flags.name)
    if (!this.jsonEnabled())
      this.log(
        `stopped ${result.kind} cluster "${result.name}" (${plural(result.stopped, 'running member')}) and removed ${result.removed}`,
      )
    return result
  }
}
