import {Text} from 'ink'

import type {ClusterMember} from '../../registry/types.js'
import type {ClusterInfoState} from '../hooks/use-cluster-info.js'
import type {ConnectionState} from '../hooks/use-registry-watch.js'
import {type Color, CONNECTION_COLOR} from '../theme.js'

export interface WatchHeaderProps {
  backend: string
  /** The one service watched, when not all. */
  service?: string
  connection: ConnectionState
  /** The backend's words for the connection state. */
  detail?: string
  /** Why the watch stream failed. */
  error?: string
  cluster: ClusterInfoState
  services: number
  instances: number
}

const CONNECTION_TEXT: Record<ConnectionState, {text: string; color?: Color}> = {
  connecting: {text: 'connecting…'},
  connected: {text: 'connected', color: CONNECTION_COLOR.connected},
  reconnecting: {text: 'reconnecting', color: CONNECTION_COLOR.reconnecting},
  'session-lost': {text: 'session lost', color: CONNECTION_COLOR.lost},
}

/** The tree's first two lines: backend, connection state and errors, then cluster members and the leader. */
export function WatchHeader({
  backend,
  service,
  connection,
  detail,
  error,
  cluster,
  services,
  instances,
}: WatchHeaderProps) {
  const state = CONNECTION_TEXT[connection]
  const counts = `${plural(services, 'service')}, ${plural(instances, 'instance')}`
  return (
    <>
      <Text wrap="truncate-end">
        <Text bold>svc watch</Text>
        {service ? ` ${service}` : ''}
        {'  '}
        {backend}
        {'  '}
        <Text color={state.color} dimColor={state.color === undefined}>
          {state.text}
        </Text>
        {detail && connection !== 'connected' ? <Text dimColor>{` (${detail})`}</Text> : null}
        {error ? <Text color="red">{` · error: ${oneLine(error)}`}</Text> : null}
        {error ? null : <Text dimColor>{` · ${counts}`}</Text>}
      </Text>
      <Text wrap="truncate-end">
        {'cluster  '}
        {cluster.info ? (
          cluster.info.members.map((m, i) => (
            <Text key={`${m.name}/${m.address}`}>
              {i > 0 ? ' · ' : ''}
              <Member leader={cluster.info?.leader} member={m} />
            </Text>
          ))
        ) : cluster.error ? null : (
          <Text dimColor>asking…</Text>
        )}
        {cluster.info?.members.length === 0 ? <Text dimColor>no members</Text> : null}
        {cluster.error ? (
          <Text color="red">{`${cluster.info ? ' · ' : ''}error: ${oneLine(cluster.error)}`}</Text>
        ) : null}
      </Text>
    </>
  )
}

function Member({member, leader}: {member: ClusterMember; leader?: string}) {
  const label = member.name === member.address ? member.address : `${member.name} ${member.address}`
  const isLeader = member.role === 'leader' || (leader !== undefined && leader === member.address)
  if (!member.reachable)
    return (
      <Text>
        {label} <Text color="red">unreachable</Text>
      </Text>
    )
  return (
    <Text>
      {label}{' '}
      {isLeader ? (
        <Text bold color="green">
          leader
        </Text>
      ) : (
        <Text dimColor>{member.role}</Text>
      )}
    </Text>
  )
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}

function oneLine(text: string): string {
  return text.replaceAll(/\s*\n\s*/g, ' ')
}
