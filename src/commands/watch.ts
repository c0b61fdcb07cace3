import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'

import {durationDefault, durationFlag} from '../flags.js'
import {isInteractive} from '../lib/tty.js'
import {watchTarget} from '../lib/watch/target.js'
import {streamChanges} from '../lib/watch/stream.js'
import {RegistryCommand} from '../registry-command.js'

export default class Watch extends RegistryCommand<typeof Watch> {
  static summary = 'Follow changes: a line stream, a handler, or a live tree.'
  static description = `Starts with the current instances, then prints one line per change, from the backend's own notification (ZooKeeper watches, Consul blocking queries, etcd watch, file-system events).
NAME follows one service; no NAME follows all. "tree" opens a live interactive tree on a terminal (arrows or j/k move, enter folds, / filters, d deregisters, q quits); without a terminal it streams lines.
--json: one JSON object per change, {"ts","type","service","instance"} and "previous" on changed (docs/json.md).
--exec runs a command after changes (debounced, one at a time) with the service's instances as JSON on stdin and SVC_SERVICE, SVC_CHANGE in its environment.`

  static examples = [
    '<%= config.bin %> watch web',
    '<%= config.bin %> watch --json | jq .',
    '<%= config.bin %> watch web --exec ./render-nginx-upstreams.sh',
    '<%= config.bin %> watch tree -b zk://127.0.0.1:2181',
  ]

  static enableJsonFlag = true
  static args = {name: Args.string({description: 'service name, or "tree" for the live tree'})}
  // a flag with a short form first: oclif's help aligns the others to the first row
  static flags = {
    service: Flags.string({char: 's', description: 'with "tree": show only this service'}),
    exec: Flags.string({description: 'command to run after changes (through the shell)'}),
    debounce: durationFlag({description: 'quiet time before --exec runs', ...durationDefault(100)}),
  }

  async run(): Promise<void> {
    const {tree, service} = watchTarget(this.args.name, this.flags.service)
    const registry = await this.registry()
    const signal = this.untilSignal()
    if (tree && isInteractive()) {
      const {renderWatchTree} = await import('../lib/ui/watch-tree.js')
      return renderWatchTree(registry, {backend: registry.description, service, signal})
    }

    if (tree) this.warnLine('watch tree needs an interactive terminal; streaming changes as lines instead')
    const {exec, debounce} = this.flags
    await streamChanges(registry, {
      service,
      json: this.jsonEnabled(),
      exec,
      debounceMs: debounce,
      signal,
      out: (l) => process.stdout.write(l + '\n'),
      log: (l) => this.warnLine(l),
    })
  }
}
