import * as Flags from '@oclif/core/flags'

import {durationDefault, durationFlag} from '../../flags.js'
import {findCluster} from '../../lib/cluster/home.js'
import {confirmDrill} from '../../lib/chaos/confirm.js'
import {clusterSpec, type KillLeaderReport, planKillLeader, runKillLeader} from '../../lib/chaos/kill-leader.js'
import {memberLabel} from '../../lib/chaos/members.js'
import {killLeaderRows} from '../../lib/chaos/report.js'
import {describeTarget, type DrillSignal} from '../../lib/chaos/targets.js'
import {renderTable} from '../../lib/render/table.js'
import {isInteractive} from '../../lib/tty.js'
import {RegistryCommand} from '../../registry-command.js'

export default class KillLeader extends RegistryCommand<typeof KillLeader> {
  static summary = "Kill the registry cluster's leader and measure the recovery."
  static description = `Finds the members and the leader through the backend itself (ZooKeeper srvr, etcd maintenance status, Consul status and agent endpoints), maps the leader to what runs it (a "svc cluster" member, a Docker container publishing its port, or the local process listening on it), prints it, and after confirmation (or --yes) stops it.
Measures: time until a majority agrees on a new leader, the longest gap between acknowledged writes of a probe writing one key every 50 ms straight to the backend, acknowledged writes missing afterwards (must be 0), and whether every registered instance still resolves. --restart-after brings the member back and measures its rejoin.
Name every member in --backend. Exit status 1 when the drill finds a problem.`

  static examples = [
    '<%= config.bin %> chaos kill-leader --cluster etcd --yes',
    '<%= config.bin %> chaos kill-leader -b zk://127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183 --restart-after 5s',
    '<%= config.bin %> chaos kill-leader -b consul://127.0.0.1:8500,127.0.0.1:8501,127.0.0.1:8502 --signal STOP --restart-after 20s --yes --json',
  ]

  static enableJsonFlag = true

  // a flag with a short form first: oclif's help aligns the others to the first row
  static flags = {
    yes: Flags.boolean({char: 'y', description: 'do not ask for confirmation'}),
    cluster: Flags.string({
      description: 'a cluster started by "svc cluster up" (instead of --backend)',
      exclusive: ['backend'],
    }),
    signal: Flags.string({description: 'how to stop the leader', options: ['KILL', 'TERM', 'STOP'], default: 'KILL'}),
    'restart-after': durationFlag({
      description: 'bring the member back this long after the fault, and measure its rejoin',
    }),
    timeout: durationFlag({
      description: 'bound on each wait (new leader, registrations, rejoin)',
      ...durationDefault(60_000),
    }),
  }

  async run(): Promise<KillLeaderReport> {
    const {flags} = this
    const cluster = flags.cluster === undefined ? undefined : await findCluster(flags.cluster)
    const spec = clusterSpec(await this.backendSpec(cluster && {backend: cluster.backendUri}))
    const plan = await planKillLeader(spec)
    const signal = `SIG${flags.signal}` as DrillSignal
    this.warnLine(`members: ${plan.before.members.map((m) => `${m.name} ${m.up ? m.role : 'down'}`).join(', ')}`)
    this.warnLine(
      `will send SIG${flags.signal} to the leader ${memberLabel(plan.before.leader)}: ${describeTarget(plan.target)}`,
    )
    await confirmDrill('Stop it?', flags.yes, isInteractive())
    const report = await runKillLeader(plan, {
      signal,
      restartAfterMs: flags['restart-after'],
      timeoutMs: flags.timeout,
      log: (line) => this.warnLine(line),
    })
    if (!this.jsonEnabled())
      this.log(await renderTable(['MEASURE', 'VALUE'], killLeaderRows(report), Boolean(process.stdout.isTTY)))
    if (!report.ok) process.exitCode = 1
    return report
  }
}
