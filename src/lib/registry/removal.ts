import type {Removal} from './types.js'

/** Rule 7: what to tell whoever removed a record that a live owner will restore; undefined when it is gone for good. */
export function removalNotice(service: string, id: string, removal: Removal): string | undefined {
  const {owner} = removal
  if (!removal.removed || !owner?.alive) return undefined
  return (
    `${service} ${id} is kept by its owner, pid ${owner.pid} on host ${owner.host}, which will register it again: ` +
    `stop that process to remove it for good`
  )
}
