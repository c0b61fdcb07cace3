import {Text} from 'ink'

import type {ContainerState} from '../../docker/types.js'
import type {Health} from '../../registry/types.js'
import {CONTAINER_COLOR, fit, HEALTH_COLOR} from '../theme.js'

export interface ContainerTableProps {
  containers: ContainerState[]
  /** Most lines to draw below the heading; the rest are summarised in one line. */
  maxRows?: number
}

interface Row {
  key: string
  container: string
  state?: ContainerState['state']
  service: string
  address: string
  health?: Health
}

/** Containers with their state, and each registered service as `name address:port health`. */
export function ContainerTable({containers, maxRows}: ContainerTableProps) {
  if (containers.length === 0) return <Text dimColor>no containers yet</Text>

  const rows = containers.flatMap((c): Row[] => {
    if (c.services.length === 0) {
      return [{key: c.id, container: c.name, state: c.state, service: '-', address: ''}]
    }

    return c.services.map((s, i) => ({
      key: `${c.id}/${s.id}`,
      container: i === 0 ? c.name : '',
      state: i === 0 ? c.state : undefined,
      service: s.service,
      address: s.address.includes(':') ? `[${s.address}]:${s.port}` : `${s.address}:${s.port}`,
      health: s.health,
    }))
  })

  const widths = [
    column(
      rows.map((r) => r.container),
      'CONTAINER',
      28,
    ),
    'stopped'.length,
    column(
      rows.map((r) => r.service),
      'SERVICE',
      28,
    ),
    column(
      rows.map((r) => r.address),
      'ADDRESS',
      46,
    ),
  ] as const
  const shown = maxRows !== undefined && rows.length > maxRows ? rows.slice(0, Math.max(1, maxRows - 1)) : rows
  const hidden = rows.length - shown.length

  return (
    <>
      <Text bold wrap="truncate-end">
        {[fit('CONTAINER', widths[0]), fit('STATE', widths[1]), fit('SERVICE', widths[2]), fit('ADDRESS', widths[3])]
          .join('  ')
          .concat('  HEALTH')}
      </Text>
      {shown.map((r) => (
        <Text key={r.key} wrap="truncate-end">
          {fit(r.container, widths[0])}
          {'  '}
          <Text color={r.state ? CONTAINER_COLOR[r.state] : undefined}>{fit(r.state ?? '', widths[1])}</Text>
          {'  '}
          {fit(r.service, widths[2])}
          {'  '}
          {fit(r.address, widths[3])}
          {'  '}
          {r.health ? <Text color={HEALTH_COLOR[r.health]}>{r.health}</Text> : null}
        </Text>
      ))}
      {hidden > 0 ? <Text dimColor>{`… ${hidden} more`}</Text> : null}
    </>
  )
}

function column(values: string[], title: string, max: number): number {
  return Math.min(max, Math.max(title.length, ...values.map((v) => v.length)))
}
