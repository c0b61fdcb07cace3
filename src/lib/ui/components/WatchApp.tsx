import {Box, type Key, Text, useApp, useInput, useStdin} from 'ink'
import {useEffect, useReducer, useRef} from 'react'

import {errorMessage} from '../../errors.js'
import {removalNotice} from '../../registry/removal.js'
import type {Registry} from '../../registry/types.js'
import {useClusterInfo} from '../hooks/use-cluster-info.js'
import {type RetryOptions, useRegistryWatch} from '../hooks/use-registry-watch.js'
import {useTerminalSize} from '../hooks/use-terminal-size.js'
import type {Color} from '../theme.js'
import {ConfirmDeregister} from './ConfirmDeregister.js'
import {ServiceTree, type TreeRow, treeRows} from './ServiceTree.js'
import {WatchHeader} from './WatchHeader.js'

export interface WatchAppProps {
  registry: Registry
  /** Backend URI for the header. */
  backend: string
  /** Watch one service instead of all. */
  service?: string
  /** Columns to draw in; defaults to the terminal's (tests pass a fixed width). */
  width?: number
  /** Rows to fit in; defaults to the terminal's, and without a terminal the tree is not cut. */
  height?: number
  /** How long a changed line stays highlighted. */
  highlightMs?: number
  /** How often the header re-reads the cluster's members. */
  clusterIntervalMs?: number
  /** Backoff between re-subscriptions when the watch stream fails. */
  retry?: RetryOptions
  /** Called when the user presses q or Ctrl-C, before the app exits. */
  onQuit?: () => void
}

interface Status {
  text: string
  color?: Color
}

interface UiState {
  /** Services folded by the user; new services arrive expanded. */
  collapsed: ReadonlySet<string>
  filter: string
  editingFilter: boolean
  selectedKey?: string
  /** The instance `d` asks about. */
  confirm?: {service: string; id: string}
  status?: Status
}

/** Lines the frame takes besides the tree: two of header, two blank, status and help. */
const CHROME_LINES = 6

/** `svc watch tree`: a live, navigable tree of services and instances with the backend's state above it. */
export function WatchApp({
  registry,
  backend,
  service,
  width,
  height,
  highlightMs,
  clusterIntervalMs,
  retry,
  onQuit,
}: WatchAppProps) {
  const watch = useRegistryWatch(registry, service, {highlightMs, retry})
  const cluster = useClusterInfo(registry, clusterIntervalMs)
  const {columns, rows: terminalRows} = useTerminalSize(width)
  const {exit} = useApp()
  const {isRawModeSupported} = useStdin()

  // keys are handled against a ref, not render-time state: several keys can arrive before React renders again
  const ui = useRef<UiState>({collapsed: new Set(), filter: '', editingFilter: false})
  const [, redraw] = useReducer((n: number) => n + 1, 0)
  const services = useRef(watch.services)
  services.current = watch.services
  const lastIndex = useRef(0)
  const mounted = useRef(true)
  useEffect(
    () => () => {
      mounted.current = false
    },
    [],
  )

  const update = (patch: Partial<UiState>): void => {
    ui.current = {...ui.current, ...patch}
    if (mounted.current) redraw()
  }

  /** The rows and the selected index for the current state; a removed selection falls to the row that took its place. */
  const layout = (): {rows: TreeRow[]; selected: number} => {
    const {collapsed, filter, selectedKey} = ui.current
    const rows = treeRows(services.current, collapsed, filter)
    const found = rows.findIndex((r) => r.key === selectedKey)
    const selected = found === -1 ? Math.min(lastIndex.current, rows.length - 1) : found
    return {rows, selected}
  }

  const {rows, selected} = layout()
  lastIndex.current = Math.max(0, selected)
  const {filter, editingFilter, confirm, status} = ui.current

  const screenRows = height ?? terminalRows
  // keep the frame shorter than the terminal: taller frames make ink clear the screen on every redraw
  const treeHeight = screenRows === undefined ? undefined : Math.max(3, screenRows - CHROME_LINES - 1)

  const setExpanded = (name: string, expanded: boolean, selectService = false): void => {
    const next = new Set(ui.current.collapsed)
    if (expanded) next.delete(name)
    else next.add(name)
    update({collapsed: next, ...(selectService && {selectedKey: `s:${name}`})})
  }

  const deregister = (target: {service: string; id: string}): void => {
    const what = `${target.service} ${target.id}`
    update({status: {text: `deregistering ${what}…`}})
    registry.deregister(target.service, target.id).then(
      (removal) => {
        const notice = removalNotice(target.service, target.id, removal)
        update({
          status: removal.removed
            ? {text: notice ?? `deregistered ${what}`, color: notice ? 'yellow' : 'green'}
            : {text: `${what} was not registered`, color: 'yellow'},
        })
      },
      (error: unknown) =>
        update({status: {text: `could not deregister ${what}: ${errorMessage(error)}`, color: 'red'}}),
    )
  }

  const onFilterKey = (input: string, key: Key): void => {
    const {filter} = ui.current
    if (key.return) update({editingFilter: false})
    else if (key.escape) update({editingFilter: false, filter: ''})
    else if (key.backspace || key.delete) update({filter: filter.slice(0, -1)})
    else if (input && !key.ctrl && !key.meta && !key.tab && printable(input)) update({filter: filter + input})
  }

  /** Enter/space toggles a service (an instance folds its own), left folds, right unfolds; false for other keys. */
  const onFoldKey = (input: string, key: Key, current: TreeRow | undefined): boolean => {
    if (key.return || input === ' ') {
      if (current?.kind === 'service') setExpanded(current.service, !current.expanded)
      else if (current?.kind === 'instance') setExpanded(current.instance.service, false, true)
    } else if (key.leftArrow || input === 'h') {
      if (current) setExpanded(current.kind === 'service' ? current.service : current.instance.service, false, true)
    } else if (key.rightArrow || input === 'l') {
      if (current?.kind === 'service') setExpanded(current.service, true)
    } else return false
    return true
  }

  /** `/` edits the filter, esc clears it, `d` asks to deregister the selected instance. */
  const onActionKey = (input: string, key: Key, current: TreeRow | undefined): void => {
    if (input === '/') update({editingFilter: true, status: undefined})
    else if (key.escape) update({filter: '', status: undefined})
    else if (input === 'd') {
      if (current?.kind === 'instance')
        update({confirm: {service: current.instance.service, id: current.instance.id}, status: undefined})
      else update({status: {text: 'select an instance to deregister', color: 'yellow'}})
    }
  }

  const onKey = (input: string, key: Key): void => {
    const {rows, selected} = layout()
    const target = moveTarget(input, key, selected, rows.length, treeHeight ?? 10)
    if (target !== undefined) {
      const row = rows[Math.max(0, Math.min(rows.length - 1, target))]
      if (row) update({selectedKey: row.key})
    } else if (!onFoldKey(input, key, rows[selected])) onActionKey(input, key, rows[selected])
  }

  const quit = (): void => {
    onQuit?.()
    exit()
  }

  const onPress = (input: string, key: Key): void => {
    const {confirm, editingFilter} = ui.current
    if (key.ctrl && input === 'c') quit()
    else if (confirm) {
      update({confirm: undefined})
      if (input === 'y' || input === 'Y') deregister(confirm)
      else update({status: {text: `kept ${confirm.service} ${confirm.id}`}})
    } else if (editingFilter) onFilterKey(input, key)
    else if (input === 'q') quit()
    else onKey(input, key)
  }

  useInput(
    (input, key) => {
      for (const [i, k] of keypresses(input, key)) onPress(i, k)
    },
    {isActive: isRawModeSupported},
  )

  const instances = [...watch.services.values()].reduce((n, list) => n + list.length, 0)
  const empty = watch.loaded
    ? filter
      ? `nothing matches "${filter}"`
      : service
        ? `no instance of ${service} is registered`
        : 'no services registered'
    : 'waiting for the first snapshot…'
  const scrolled = treeHeight !== undefined && rows.length > treeHeight ? `  ${selected + 1}/${rows.length}` : ''

  return (
    <Box flexDirection="column" width={columns}>
      <WatchHeader
        backend={backend}
        cluster={cluster}
        connection={watch.connection}
        detail={watch.detail}
        error={watch.error}
        instances={instances}
        service={service}
        services={watch.services.size}
      />
      <Box flexDirection="column" marginTop={1}>
        <ServiceTree
          columns={columns}
          empty={empty}
          height={treeHeight}
          lastChange={watch.lastChange}
          rows={rows}
          selected={selected}
        />
      </Box>
      <Box marginTop={1}>
        {confirm ? (
          <ConfirmDeregister id={confirm.id} service={confirm.service} />
        ) : editingFilter ? (
          <Text wrap="truncate-end">
            {'/'}
            {filter}
            <Text inverse> </Text>
            <Text dimColor>{'  enter keeps · esc clears'}</Text>
          </Text>
        ) : (
          <Text wrap="truncate-end">
            {status ? <Text color={status.color}>{status.text}</Text> : null}
            {status && filter ? '  ' : ''}
            {filter ? <Text dimColor>{`filter "${filter}" · esc clears`}</Text> : null}
            {status || filter ? '' : ' '}
          </Text>
        )}
      </Box>
      <Text dimColor wrap="truncate-end">
        {`↑↓/jk move · enter/space expand · / filter · d deregister · q quit${scrolled}`}
      </Text>
    </Box>
  )
}

/** The row index a movement key goes to (not yet clamped), or undefined for any other key. */
function moveTarget(input: string, key: Key, selected: number, count: number, page: number): number | undefined {
  if (key.downArrow || input === 'j') return selected + 1
  if (key.upArrow || input === 'k') return selected - 1
  if (key.pageDown) return selected + page
  if (key.pageUp) return selected - page
  if (key.home || input === 'g') return 0
  if (key.end || input === 'G') return count - 1
  return undefined
}

/** Ink reports keys typed faster than it reads (tmux send-keys, a paste) as one input: split it into single keys. */
function keypresses(input: string, key: Key): Array<[string, Key]> {
  if ([...input].length <= 1 || input.startsWith('\u001B')) return [[input, key]]
  return [...input].map((ch): [string, Key] => {
    const plain: Key = {...key, ctrl: false, shift: ch !== ch.toLowerCase()}
    if (ch === '\r' || ch === '\n') return ['', {...plain, return: true}]
    if (ch === '\u007F' || ch === '\b') return ['', {...plain, backspace: true}]
    if (ch === '\t') return ['', {...plain, tab: true}]
    if (ch === '\u0003') return ['c', {...plain, ctrl: true}]
    return [ch, plain]
  })
}

function printable(input: string): boolean {
  // control characters and escape sequences never belong in a filter
  return [...input].every((ch) => ch >= ' ' && ch !== '\u007F')
}
