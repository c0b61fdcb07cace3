import type {ServiceInstance, ServiceSummary} from '../registry/types.js'

/**
 * Renders rows as a bordered table on a TTY that is wide enough, and as plain aligned columns otherwise, so pipes,
 * grep and awk see one record a line and a narrow terminal gets no wrapped borders.
 */
export async function renderTable(
  head: string[],
  rows: string[][],
  tty: boolean,
  columns = process.stdout.columns,
): Promise<string> {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  // cli-table3 draws "│ " before every cell, " " after it, and a last "│"
  const bordered = widths.reduce((sum, w) => sum + w + 3, 1)
  if (!tty || (columns !== undefined && columns > 0 && bordered > columns)) {
    const line = (cells: string[]): string =>
      cells
        .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd()
    return [line(head), ...rows.map((r) => line(r))].join('\n')
  }

  // loaded only when a table is drawn: it costs start-up time
  const {default: Table} = await import('cli-table3')
  const color = !process.env.NO_COLOR
  const table = new Table({head, style: {head: color ? ['cyan'] : [], border: color ? ['grey'] : []}})
  table.push(...rows)
  return table.toString()
}

/** `svc resolve NAME`'s table of instances, as a string (the demo prints the same). */
export function renderInstances(instances: readonly ServiceInstance[], tty: boolean): Promise<string> {
  const rows = instances.map((i) => [
    i.id,
    `${i.address}:${i.port}`,
    i.health,
    i.tags.join(','),
    Object.entries(i.meta)
      .map(([k, v]) => `${k}=${v}`)
      .join(' '),
  ])
  return renderTable(['ID', 'ADDRESS', 'HEALTH', 'TAGS', 'META'], rows, tty)
}

/** `svc resolve`'s table of services with their instance counts. */
export function renderServices(services: readonly ServiceSummary[], tty: boolean): Promise<string> {
  const rows = services.map((s) => [s.name, String(s.instances), String(s.passing)])
  return renderTable(['SERVICE', 'INSTANCES', 'PASSING'], rows, tty)
}
