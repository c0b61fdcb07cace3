import {UserError} from '../errors.js'
import {validateServiceName} from '../registry/validate.js'

/** What `svc watch [NAME|tree] [-s SERVICE]` follows; -s belongs to the tree (NAME says it otherwise). */
export function watchTarget(
  name: string | undefined,
  treeService: string | undefined,
): {tree: boolean; service?: string} {
  const tree = name === 'tree'
  if (!tree && treeService !== undefined) {
    throw new UserError(
      '--service (-s) goes with "tree"',
      `use: svc watch tree -s ${treeService}, or svc watch ${treeService}`,
    )
  }

  const service = tree ? treeService : name
  if (service !== undefined) validateServiceName(service)
  return {tree, service}
}
