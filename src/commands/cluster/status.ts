import * as Flags from '@oclif/core/flags'

import {SvcCommand} from '../../base-command.js'
import {type ClusterView, findCluster, MEMBER_HEAD, memberRows, viewCluster} from '../../lib/cluster/index.js'
import {renderTable} from '../../lib/render/table.js'

export default class ClusterStatus extends SvcCommand<typeof ClusterStatus> {
  static summary = 'Show the members of a local cluster: role, pid, up or down.'
  static description = `Asks every member of the cluster started by "svc cluster up" for its role (ZooKeeper srvr, etcd maintenance status, Consul status endpoints). Without --name: the only cluster there is.`

  static examples = ['<%= config.bin %> cluster status', '<%= config.bin %> cluster status --name zk5 --json']

  static enableJsonFlag = true

  static flags = {
    name: Flags.string({description: 'cluster name [default: the only cluster]'}),
  }

  async run(): Promise<ClusterView> {
    const view = await viewCluster(await findCluster(this.flags.name))
    if (!this.jsonEnabled()) {
      this.log(`${view.kind} cluster "${view.name}": ${view.backendUri}`)
      this.log(await renderTable(MEMBER_HEAD, memberRows(view), Boolean(process.stdout.isTTY)))
    }

    return view
  }
}
