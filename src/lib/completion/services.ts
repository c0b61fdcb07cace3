import type {Registry} from '../registry/types.js'
import {listServices} from '../resolve.js'

/** How long a completion may wait for the registry: past this, the shell user notices the pause. */
export const COMPLETION_BUDGET_MS = 300

/** The service names, or undefined when the registry does not answer within the budget (or fails). */
export async function completionServiceNames(
  open: () => Promise<Registry>,
  budgetMs = COMPLETION_BUDGET_MS,
): Promise<string[] | undefined> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), budgetMs)
  })
  const names = (async () => {
    const services = await listServices(await open())
    return services.map((s) => s.name).sort()
  })().catch(() => undefined)
  try {
    return await Promise.race([names, late])
  } finally {
    clearTimeout(timer)
  }
}
