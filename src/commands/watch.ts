import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'

import {SvcCommand} from '../base-command.js'
import {durationFlag} from '../flags.js'
import {validateServiceName} from '../lib/registry/validate.js'
import {isInteractive} from '../lib/tty.js'
import {streamChanges} from '../lib/watch/stream.js'

export default class Watch extends SvcCommand<typeof Watch> {
  static summary = 'Follow changes: a line stream, a handler, or a live tree.'
  static description = `Starts with the current instances, then prints one line per change, from the backend's own notification (ZooKeeper watches, Consul blocking queries, etcd watch, file-system events).
NAME follows one service; no NAME follows all. "tree" opens a live interactive tree on a terminal (arrows or j/k move, enter folds, / filters, d deregisters, q quits); without a terminal it streams lines.
--exec runs a command after changes (debounced, one at a time) with the service's instances as JSON on stdin and SVC_SERVICE, SVC_CHANGE in its environment.`

  static examples = [
    '<%= config.bin %> watch web',
    '<%= config.bin %> watch --json | jq .',
    '<%= config.bin %> watch web --exec ./render-nginx-upstreams.sh',
    '<%= config.bin %> watch tree -b zk://127.0.0.1:2181',
  ]

  static args = {
    name: Args.string({description: 'service name, or "tree" for the live tree'}),
  }

  static flags = {
    json: Flags.boolean({description: 'one JSON object per change: {"ts","type","service","instance"}'}),
    exec: Flags.string({description: 'command to run after changes (through the shell)'}),
    debounce: durationFlag({description: 'quiet time before --exec runs', default: 100}),
    service: Flags.string({char: 's', description: 'with "tree": show only this service'}),
  }

  async run(): Promise<void> {
    const {args, flags} = this
    const tree = args.name === 'tree'
    const service = tree ? flags.service : args.name
    if (service !== undefined) validateServiceName(service)
    const registry = await this.registry()
    const controller = new AbortController()
    const stop = (): void => controller.abort()
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
    try {
      if (tree) {
        if (isInteractive()) {
          const {renderWatchTree} = await import('../lib/ui/watch-tree.js')
          await renderWatchTree(registry, {backend: registry.description, service, signal: controller.signal})
          return
        }

        this.warnLine('watch tree needs an interactive terminal; streaming changes as lines instead')
      }

      await streamChanges(registry, {
        service,
        json: flags.json,
        exec: flags.exec,
        debounceMs: flags.debounce,
        signal: controller.signal,
        out: (line) => process.stdout.write(line + '\n'),
        log: (line) => this.warnLine(line),
      })
    } finally {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
    }
  }
}
