import * as Flags from '@oclif/core/flags'

import {SvcCommand} from '../../base-command.js'
import {durationDefault, durationFlag, portFlag} from '../../flags.js'
import {clusterUp, type ClusterKind, type ClusterView, MEMBER_HEAD, memberRows} from '../../lib/cluster/index.js'
import {progress} from '../../lib/render/progress.js'
import {renderTable} from '../../lib/render/table.js'

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

  static flags = {
    backend: Flags.string({
      char: 'b',
      description: 'which servers to run',
      options: ['zk', 'etcd', 'consul'],
      required: true,
    }),
    nodes: Flags.integer({char: 'n', description: 'members (3 or 5 make sense)', default: 3, min: 1, max: 9}),
    name: Flags.string({description: 'cluster name [default: the backend]'}),
    'base-port': portFlag({description: 'consecutive ports from here [default: free ports]'}),
    timeout: durationFlag({description: 'bound on starting and electing a leader', ...durationDefault(90_000)}),
  }

  async run(): Promise<ClusterView> {
    const {flags} = this
    const kind = flags.backend as ClusterKind
    const name = flags.name ?? kind
    const shown = progress()
    shown.update(`starting ${flags.nodes} ${kind} members of cluster "${name}"`)
    let view: ClusterView
    try {
      view = await clusterUp({
        // Ctrl-C while the members start stops them again, instead of leaving them behind
        signal: this.untilSignal(),
        kind,
        nodes: flags.nodes,
        name,
        basePort: flags['base-port'],
        timeoutMs: flags.timeout,
        log: (message) => shown.update(message),
      })
    } catch (error) {
      shown.done()
      throw error
    }

    shown.done(`${kind} cluster "${name}" is up; leader ${view.leader ?? 'unknown'}; manifest ${view.manifest}`)
    if (!this.jsonEnabled()) {
      this.log(await renderTable(MEMBER_HEAD, memberRows(view), Boolean(process.stdout.isTTY)))
      this.log(`\nbackend: ${view.backendUri}`)
      this.log(`use it:  export SVC_BACKEND=${view.backendUri}`)
    }

    return view
  }
}
