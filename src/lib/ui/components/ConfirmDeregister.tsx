import {Text} from 'ink'

export interface ConfirmDeregisterProps {
  service: string
  id: string
}

/** The question `d` asks before removing an instance: y removes it, any other key keeps it. */
export function ConfirmDeregister({service, id}: ConfirmDeregisterProps) {
  return (
    <Text wrap="truncate-end">
      <Text bold color="yellow">
        {`deregister ${service} ${id}?`}
      </Text>
      {' y/n'}
    </Text>
  )
}
