import {formatDuration} from '../duration.js'
import type {KillInstancePlan, KillInstanceReport} from './kill-instance.js'
import type {KillLeaderPlan, KillLeaderReport} from './kill-leader.js'
import {describeTarget} from './targets.js'
import {memberLabel} from './members.js'
import {plural} from '../text.js'
import {renderTable} from '../render/table.js'

const ms = (value: number | undefined): string => (value === undefined ? '-' : formatDuration(value))

/** The kill-leader report as two columns (rendered as a table on a TTY, aligned lines otherwise). */
export function killLeaderRows(report: KillLeaderReport): string[][] {
  const w = report.writes
  const rows: string[][] = [
    ['backend', `${report.backend} ${report.uri}`],
    ['members', report.members.map((m) => `${m.name} ${m.role}`).join(', ')],
    ['killed leader', `${memberLabel(report.leader)} with SIG${report.signal}`],
    ['stopped', report.target.description],
    ['new leader', report.newLeader ? memberLabel(report.newLeader) : 'none'],
    ['new leader after', ms(report.newLeaderMs)],
    [
      'write unavailability',
      `${ms(w.unavailableMs)} (longest gap between acknowledged writes, every ${w.intervalMs}ms)`,
    ],
    ['first write after fault', ms(w.firstAckAfterFaultMs)],
    ['writes', `${w.attempted} attempted, ${w.acknowledged} acknowledged, ${w.failed} failed`],
    [
      'acknowledged writes lost',
      w.verified
        ? `${w.lost} (of ${w.acknowledged}; ${w.ackedBeforeFault} before the fault)`
        : 'unknown (not read back)',
    ],
    [
      'registrations resolving',
      `${report.registrations.resolving} of ${report.registrations.before}${report.registrations.missing.length > 0 ? ` (missing: ${report.registrations.missing.slice(0, 5).join(', ')})` : ''}`,
    ],
  ]
  if (report.restart) {
    const r = report.restart
    rows.push(
      [
        'restarted after',
        `${ms(r.afterMs)}: ${r.error ? `failed: ${r.error}` : r.how}${r.pid === undefined ? '' : ` (pid ${r.pid})`}`,
      ],
      ['rejoined', ms(r.rejoinMs)],
      ['caught up', ms(r.caughtUpMs)],
    )
  }

  for (const note of report.notes) rows.push(['note', note])
  for (const problem of report.problems) rows.push(['PROBLEM', problem])
  rows.push(['result', report.ok ? 'ok' : 'FAILED'])
  return rows
}

/** The kill-instance report: one row per stopped instance, then the totals. */
export function killInstanceRows(report: KillInstanceReport): string[][] {
  const rows: string[][] = report.instances.map((i) => [
    i.id,
    `${i.address}:${i.port}`,
    i.target.description,
    i.goneMs === undefined ? (i.error ? `error: ${i.error}` : 'still resolves') : `${ms(i.goneMs)} (${i.how})`,
  ])
  return rows
}

export function killInstanceSummary(report: KillInstanceReport): string[] {
  const lines = [
    `service ${report.service} on ${report.uri}: stopped ${report.instances.length} of ${plural(report.before, 'instance')} with SIG${report.signal}`,
  ]
  if (report.load) {
    const l = report.load
    lines.push(
      `load through ${l.url}: ${l.sent} requests at ${l.ratePerSecond}/s, ${l.failed} failed (${Object.entries(
        l.statuses,
      )
        .map(([k, v]) => `${k}: ${v}`)
        .join(', ')})`,
    )
  }

  for (const problem of report.problems) lines.push(`PROBLEM: ${problem}`)
  lines.push(`result: ${report.ok ? 'ok' : 'FAILED'}`)
  return lines
}

/** The kill-instance report for people: the table, then the summary lines. */
export async function renderKillInstance(report: KillInstanceReport, tty: boolean): Promise<string> {
  const table = await renderTable(['INSTANCE', 'ADDRESS', 'STOPPED', 'LEFT AFTER'], killInstanceRows(report), tty)
  return [table, ...killInstanceSummary(report)].join('\n')
}

/** The kill-leader report for people: one measure a row. */
export function renderKillLeader(report: KillLeaderReport, tty: boolean): Promise<string> {
  return renderTable(['MEASURE', 'VALUE'], killLeaderRows(report), tty)
}

/** What a kill-instance drill is about to stop, one line a victim, for stderr before the confirmation. */
export function killInstancePlanLines(plan: KillInstancePlan): string[] {
  return plan.victims.map(
    (v) => `will stop ${describeTarget(v.target)}, behind ${v.instance.id} (${v.instance.address}:${v.instance.port})`,
  )
}

/** The members and the leader a kill-leader drill is about to stop, for stderr before the confirmation. */
export function killLeaderPlanLines(plan: KillLeaderPlan, signal: string): string[] {
  return [
    `members: ${plan.before.members.map((m) => `${m.name} ${m.up ? m.role : 'down'}`).join(', ')}`,
    `will send SIG${signal} to the leader ${memberLabel(plan.before.leader)}: ${describeTarget(plan.target)}`,
  ]
}
