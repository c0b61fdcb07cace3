import {SvcCommand} from '../../base-command.js'
import {clusterUpFlags} from '../../command-flags/cluster.js'
import type {ClusterKind, ClusterView} from '../../lib/cluster/index.js'
import {renderClusterUp, startCluster} from '../../lib/cluster/up-view.js'

export default class ClusterUp extends SvcCommand<typeof ClusterUp> {
  static summary = 'Start a local cluster of real ZooKeeper, etcd or Consul servers on 127.0.0.1.'
  static description = `Starts the installed servers as detached processes (they keep running after this command exits), waits until a leader is elected and every member follows it, and writes the manifest to $SVC_HOME/clusters/<name>.json (members, ports, pids, data dirs).
Prints the members and the --backend URI to use. Stop it with: svc cluster down --name <name>.`

  static examples = [
    '<%= config.bin %> cluster up --backend etcd',
    '<%= config.bin %> cluster up --backend zk --nodes 5 --name zk5',
    '<%= config.bin %> cluster up --backend consul --base-port 18500 --json',
  ]

  static enableJsonFlag = true

  static flags = clusterUpFlags

  async run(): Promise<ClusterView> {
    const {flags} = this
    const view = await startCluster({
      kind: flags.backend as ClusterKind,
      nodes: flags.nodes,
      name: flags.name,
      basePort: flags['base-port'],
      timeoutMs: flags.timeout,
      // Ctrl-C while the members start stops them again, instead of leaving them behind
      signal: this.untilSignal(),
    })
    if (!this.jsonEnabled()) this.log(await renderClusterUp(view, Boolean(process.stdout.isTTY)))
    return view
  }
}
