import {killLeaderFlags} from '../../command-flags/chaos.js'
import {confirmDrill} from '../../lib/chaos/confirm.js'
import {clusterSpec, type KillLeaderReport, planKillLeader, runKillLeader} from '../../lib/chaos/kill-leader.js'
import {killLeaderPlanLines, renderKillLeader} from '../../lib/chaos/report.js'
import type {DrillSignal} from '../../lib/chaos/targets.js'
import {findCluster} from '../../lib/cluster/home.js'
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
  static flags = killLeaderFlags

  async run(): Promise<KillLeaderReport> {
    const {flags} = this
    const cluster = flags.cluster === undefined ? undefined : await findCluster(flags.cluster)
    const plan = await planKillLeader(clusterSpec(await this.backendSpec(cluster && {backend: cluster.backendUri})))
    for (const line of killLeaderPlanLines(plan, flags.signal)) this.warnLine(line)
    await confirmDrill('Stop it?', flags.yes, isInteractive())
    const report = await runKillLeader(plan, {
      signal: `SIG${flags.signal}` as DrillSignal,
      restartAfterMs: flags['restart-after'],
      timeoutMs: flags.timeout,
      log: (line) => this.warnLine(line),
    })
    if (!this.jsonEnabled()) this.log(await renderKillLeader(report, Boolean(process.stdout.isTTY)))
    if (!report.ok) process.exitCode = 1
    return report
  }
}
