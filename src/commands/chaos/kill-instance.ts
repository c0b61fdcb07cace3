import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'

import {durationDefault, durationFlag} from '../../flags.js'
import {confirmDrill} from '../../lib/chaos/confirm.js'
import {type KillInstanceReport, planKillInstance, runKillInstance} from '../../lib/chaos/kill-instance.js'
import {checkLoadUrl} from '../../lib/chaos/load.js'
import {killInstanceRows, killInstanceSummary} from '../../lib/chaos/report.js'
import {describeTarget} from '../../lib/chaos/targets.js'
import {renderTable} from '../../lib/render/table.js'
import {validateServiceName} from '../../lib/registry/validate.js'
import {isInteractive} from '../../lib/tty.js'
import {RegistryCommand} from '../../registry-command.js'

export default class KillInstance extends RegistryCommand<typeof KillInstance> {
  static summary = 'Stop containers or processes behind instances of a service and measure how the registry follows.'
  static description = `Picks --count healthy instances of SERVICE at random, maps each to what runs it (the container the agent registered it from, or the local process listening on its port; never anything else, and nothing on another machine), prints them, and after confirmation (or --yes) stops them.
Measures, through the registry's watch, the time until each no longer resolves (removed, or marked critical). With --proxy URL, GETs the URL at a fixed rate (bounded in count and time) from 1 s before the stop until 1 s after the last instance left, and reports the failed requests.`

  static examples = [
    '<%= config.bin %> chaos kill-instance web --yes',
    '<%= config.bin %> chaos kill-instance web --count 2 --proxy http://127.0.0.1:8080/web/ -b consul --json --yes',
  ]

  static enableJsonFlag = true

  static args = {
    service: Args.string({description: 'service whose instances to stop', required: true}),
  }

  static flags = {
    count: Flags.integer({char: 'n', description: 'instances to stop', default: 1, min: 1}),
    signal: Flags.string({description: 'how to stop them', options: ['KILL', 'TERM'], default: 'KILL'}),
    proxy: Flags.string({description: 'URL to load during the drill (e.g. through svc proxy)'}),
    rate: Flags.integer({description: 'requests per second with --proxy', default: 20, min: 1, max: 500}),
    'max-requests': Flags.integer({description: 'hard cap on requests with --proxy', default: 2000, min: 1}),
    timeout: durationFlag({description: 'bound on waiting for the instances to leave', ...durationDefault(90_000)}),
    yes: Flags.boolean({char: 'y', description: 'do not ask for confirmation'}),
  }

  async run(): Promise<KillInstanceReport> {
    const {args, flags} = this
    const service = validateServiceName(args.service)
    if (flags.proxy !== undefined) checkLoadUrl(flags.proxy)
    const registry = await this.registry()
    const plan = await planKillInstance(registry, service, flags.count)
    for (const v of plan.victims)
      this.warnLine(
        `will stop ${describeTarget(v.target)}, behind ${v.instance.id} (${v.instance.address}:${v.instance.port})`,
      )
    await confirmDrill(
      `Stop ${plan.victims.length === 1 ? 'it' : `these ${plan.victims.length}`}?`,
      flags.yes,
      isInteractive(),
    )
    const report = await runKillInstance(registry, plan, {
      signal: flags.signal === 'TERM' ? 'SIGTERM' : 'SIGKILL',
      timeoutMs: flags.timeout,
      proxy: flags.proxy,
      ratePerSecond: flags.rate,
      maxRequests: flags['max-requests'],
      log: (line) => this.warnLine(line),
    })
    if (!this.jsonEnabled()) {
      this.log(
        await renderTable(
          ['INSTANCE', 'ADDRESS', 'STOPPED', 'LEFT AFTER'],
          killInstanceRows(report),
          Boolean(process.stdout.isTTY),
        ),
      )
      for (const line of killInstanceSummary(report)) this.log(line)
    }

    if (!report.ok) process.exitCode = 1
    return report
  }
}
