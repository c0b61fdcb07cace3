import {Text} from 'ink'

import type {ContainerState} from '../../docker/types.js'
import type {BackendState} from '../hooks/use-agent.js'
import {CONNECTION_COLOR, HEALTH_COLOR} from '../theme.js'

export interface AgentHeaderProps {
  backend: string
  backendState?: BackendState
  docker: 'connected' | 'reconnecting'
  containers: ContainerState[]
}

/** The live view's first two lines: backend URI and state, Docker state, container and instance counts. */
export function AgentHeader({backend, backendState, docker, containers}: AgentHeaderProps) {
  const running = containers.filter((c) => c.state === 'running').length
  const instances = containers.flatMap((c) => c.services)
  const byHealth = (['passing', 'warning', 'critical', 'unknown'] as const)
    .map((h) => ({health: h, n: instances.filter((i) => i.health === h).length}))
    .filter((x) => x.n > 0)

  return (
    <>
      <Text wrap="truncate-end">
        <Text bold>svc agent</Text>
        {'  backend '}
        {backend}
        {backendState ? ' ' : ''}
        {backendState ? <Text color={CONNECTION_COLOR[backendState]}>{backendState}</Text> : null}
      </Text>
      <Text wrap="truncate-end">
        {'docker '}
        <Text color={CONNECTION_COLOR[docker]}>{docker}</Text>
        {` · ${plural(containers.length, 'container')} (${running} running) · ${plural(instances.length, 'instance')}`}
        {byHealth.map((x, i) => (
          <Text key={x.health}>
            {i === 0 ? ': ' : ', '}
            <Text color={HEALTH_COLOR[x.health]}>{`${x.n} ${x.health}`}</Text>
          </Text>
        ))}
      </Text>
    </>
  )
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}
