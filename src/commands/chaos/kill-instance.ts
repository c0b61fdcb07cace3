import * as Args from '@oclif/core/args'

import {killInstanceFlags} from '../../command-flags/chaos.js'
import {confirmDrill} from '../../lib/chaos/confirm.js'
import {type KillInstanceReport, planKillInstance, runKillInstance} from '../../lib/chaos/kill-instance.js'
import {checkLoadUrl} from '../../lib/chaos/load.js'
import {killInstancePlanLines, renderKillInstance} from '../../lib/chaos/report.js'
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
  static args = {service: Args.string({description: 'service whose instances to stop', required: true})}
  static flags = killInstanceFlags

  async run(): Promise<KillInstanceReport> {
    const {args, flags} = this
    const service = validateServiceName(args.service)
    if (flags.proxy !== undefined) checkLoadUrl(flags.proxy)
    const registry = await this.registry()
    const plan = await planKillInstance(registry, service, flags.count)
    for (const line of killInstancePlanLines(plan)) this.warnLine(line)
    const n = plan.victims.length
    await confirmDrill(`Stop ${n === 1 ? 'it' : `these ${n}`}?`, flags.yes, isInteractive())
    const report = await runKillInstance(registry, plan, {
      signal: flags.signal === 'TERM' ? 'SIGTERM' : 'SIGKILL',
      timeoutMs: flags.timeout,
      proxy: flags.proxy,
      ratePerSecond: flags.rate,
      maxRequests: flags['max-requests'],
      log: (line) => this.warnLine(line),
    })
    if (!this.jsonEnabled()) this.log(await renderKillInstance(report, Boolean(process.stdout.isTTY)))
    if (!report.ok) process.exitCode = 1
    return report
  }
}
