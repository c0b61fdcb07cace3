import {Text} from 'ink'
import {useRef} from 'react'

import type {Health, ServiceInstance} from '../../registry/types.js'
import type {LastChange} from '../hooks/use-registry-watch.js'
import {type Color, fit, HEALTH_COLOR} from '../theme.js'

export type TreeRow =
  | {kind: 'service'; key: string; service: string; instances: readonly ServiceInstance[]; expanded: boolean}
  | {kind: 'instance'; key: string; instance: ServiceInstance}

export interface ServiceTreeProps {
  rows: readonly TreeRow[]
  /** Index of the selected row. */
  selected: number
  columns: number
  /** Most rows to draw; the tree scrolls to keep the selection in view. Undefined draws all. */
  height?: number
  lastChange?: LastChange
  /** Why there are no rows. */
  empty?: string
}

interface Segment {
  text: string
  color?: Color
  dim?: boolean
}

const HEALTH_ORDER: readonly Health[] = ['passing', 'warning', 'critical', 'unknown']
const HEALTH_WIDTH = 'critical'.length
const MARK: Record<LastChange['type'], string> = {added: '+', changed: '~', removed: '-'}

/** The rows the tree shows: services sorted by name, each followed by its instances unless collapsed. */
export function treeRows(
  services: ReadonlyMap<string, readonly ServiceInstance[]>,
  collapsed: ReadonlySet<string>,
  filter = '',
): TreeRow[] {
  const needle = filter.toLowerCase()
  const rows: TreeRow[] = []
  for (const name of [...services.keys()].sort((a, b) => a.localeCompare(b))) {
    const all = services.get(name) ?? []
    const instances =
      needle === '' || name.toLowerCase().includes(needle)
        ? all
        : all.filter((i) => i.id.toLowerCase().includes(needle))
    if (instances.length === 0) continue
    const expanded = !collapsed.has(name)
    rows.push({kind: 'service', key: `s:${name}`, service: name, instances, expanded})
    if (expanded) for (const instance of instances) rows.push({kind: 'instance', key: rowKey(instance), instance})
  }

  return rows
}

export function rowKey(instance: Pick<ServiceInstance, 'id' | 'service'>): string {
  return `i:${instance.service}\u0000${instance.id}`
}

/** Services and their instances as `id  address:port  health  tags`; the selection inverse, the last change bold. */
export function ServiceTree({rows, selected, columns, height, lastChange, empty}: ServiceTreeProps) {
  const offset = useRef(0)
  if (rows.length === 0) return <Text dimColor>{empty ?? 'no services'}</Text>

  if (height === undefined || rows.length <= height) offset.current = 0
  else {
    const max = rows.length - height
    offset.current = Math.min(max, Math.max(0, selected - height + 1, Math.min(offset.current, selected)))
  }

  const instances = rows.flatMap((r) => (r.kind === 'instance' ? [r.instance] : []))
  // the marks, the indent, two gaps, the health and the start of the tags always fit: id and address share the rest
  const tagRoom = instances.some((i) => i.tags.length > 0) ? 10 : 0
  const room = Math.max(16, columns - 3 - 4 - 2 - 2 - HEALTH_WIDTH - tagRoom)
  const addressWidth = column(
    instances.map((i) => address(i)),
    Math.min(40, Math.floor(room * 0.45)),
  )
  const widths = {
    id: column(
      instances.map((i) => i.id),
      room - addressWidth,
    ),
    address: addressWidth,
  }
  const shown = height === undefined ? rows : rows.slice(offset.current, offset.current + height)

  return (
    <>
      {shown.map((row, i) => {
        const isSelected = offset.current + i === selected
        const change = changeOf(row, lastChange)
        const head = `${isSelected ? '›' : ' '}${change ? MARK[change] : ' '} `
        const segments = row.kind === 'service' ? serviceLine(row, lastChange) : instanceLine(row.instance, widths)
        return (
          <Text bold={change !== undefined} inverse={isSelected} key={row.key} wrap="truncate-end">
            {render(fitSegments([{text: head}, ...segments], columns, isSelected))}
          </Text>
        )
      })}
    </>
  )
}

function changeOf(row: TreeRow, change: LastChange | undefined): LastChange['type'] | undefined {
  if (!change) return undefined
  if (row.kind === 'instance')
    return change.type !== 'removed' && row.instance.service === change.service && row.instance.id === change.id
      ? change.type
      : undefined
  // a folded service stands in for its changed instance; a removed instance has only its service left to mark
  if (row.service !== change.service) return undefined
  return change.type === 'removed' || !row.expanded ? change.type : undefined
}

function serviceLine(row: Extract<TreeRow, {kind: 'service'}>, change: LastChange | undefined): Segment[] {
  const n = row.instances.length
  const segments: Segment[] = [
    {text: `${row.expanded ? '▾' : '▸'} ${row.service}  `},
    {text: `${n} instance${n === 1 ? '' : 's'}`, dim: true},
  ]
  let first = true
  for (const health of HEALTH_ORDER) {
    const count = row.instances.filter((x) => x.health === health).length
    if (count === 0) continue
    segments.push({text: first ? ': ' : ', ', dim: true}, {text: `${count} ${health}`, color: HEALTH_COLOR[health]})
    first = false
  }

  if (change?.type === 'removed' && change.service === row.service)
    segments.push({text: `  (${change.id} removed)`, color: 'yellow'})
  return segments
}

function instanceLine(instance: ServiceInstance, widths: {id: number; address: number}): Segment[] {
  return [
    {text: `    ${fitMiddle(instance.id, widths.id)}  ${fitMiddle(address(instance), widths.address)}  `},
    {text: instance.health.padEnd(HEALTH_WIDTH), color: HEALTH_COLOR[instance.health]},
    {text: instance.tags.length > 0 ? `  ${instance.tags.join(',')}` : ''},
  ]
}

/** Cuts the segments to `width` with an ellipsis; pads to `width` when `pad` (an inverse line fills the row). */
function fitSegments(segments: Segment[], width: number, pad: boolean): Segment[] {
  const out: Segment[] = []
  let used = 0
  for (const segment of segments) {
    const room = width - used
    if (segment.text.length > room) {
      if (room > 0) out.push({...segment, text: fit(segment.text, room)})
      return out
    }

    out.push(segment)
    used += segment.text.length
  }

  if (pad && used < width) out.push({text: ' '.repeat(width - used)})
  return out
}

function render(segments: Segment[]) {
  return segments.map((s, i) =>
    s.color || s.dim ? (
      // segments have no identity beyond their place in the line
      <Text color={s.color} dimColor={s.dim} key={i}>
        {s.text}
      </Text>
    ) : (
      s.text
    ),
  )
}

function address(instance: ServiceInstance): string {
  return instance.address.includes(':')
    ? `[${instance.address}]:${instance.port}`
    : `${instance.address}:${instance.port}`
}

/** Cut in the middle: ids and addresses of one service share their start and differ at their end. */
function fitMiddle(text: string, width: number): string {
  if (text.length <= width) return text.padEnd(width)
  if (width <= 1) return text.slice(0, width)
  const tail = Math.ceil((width - 1) / 2)
  return `${text.slice(0, width - 1 - tail)}…${text.slice(text.length - tail)}`
}

function column(values: string[], max: number): number {
  return Math.min(max, Math.max(0, ...values.map((v) => v.length)))
}
