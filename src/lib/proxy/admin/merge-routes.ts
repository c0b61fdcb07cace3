import type {InstanceView, RouteView} from './routes-view.js'

/** An instance of the whole proxy under --workers: the workers' counts summed, ejected when any worker ejected it. */
export interface MergedInstanceView extends InstanceView {
  /** How many workers hold it ejected now (passive health is each worker's own). */
  ejectedIn: number
  /** How many workers' route tables hold it (all of them, but for a moment after a change). */
  workers: number
}

export interface MergedRouteView extends RouteView {
  instances: MergedInstanceView[]
}

/**
 * Merges the workers' /routes into the whole proxy's: the same shape, with requests and in-flight summed and each
 * instance `ejected` while any worker holds it ejected (until the latest of their deadlines).
 */
export function mergeRoutes(views: ReadonlyArray<readonly RouteView[]>): MergedRouteView[] {
  const services = new Map<string, {first: RouteView; requests: number; instances: Map<string, MergedInstanceView>}>()
  for (const view of views) {
    for (const service of view) {
      let merged = services.get(service.service)
      if (merged === undefined) {
        merged = {first: service, requests: 0, instances: new Map()}
        services.set(service.service, merged)
      }

      merged.requests += service.requests
      for (const instance of service.instances) add(merged.instances, instance)
    }
  }

  return [...services.values()]
    .sort((a, b) => a.first.service.localeCompare(b.first.service))
    .map(({first, requests, instances}) => {
      const merged = [...instances.values()].map((i) => ({...i, state: stateOf(i)}))
      return {
        ...first,
        available: merged.filter((i) => i.state === 'in-rotation').length,
        requests,
        instances: merged,
      }
    })
}

function add(instances: Map<string, MergedInstanceView>, instance: InstanceView): void {
  const {ejectedUntil, ...rest} = instance
  let merged = instances.get(instance.id)
  if (merged === undefined) {
    merged = {...rest, inflight: 0, requests: 0, ejectedIn: 0, workers: 0}
    instances.set(instance.id, merged)
  }

  merged.inflight += instance.inflight
  merged.requests += instance.requests
  merged.workers++
  if (ejectedUntil === undefined) return
  merged.ejectedIn++
  // ISO 8601 in UTC: the later deadline sorts last
  if (merged.ejectedUntil === undefined || ejectedUntil > merged.ejectedUntil) merged.ejectedUntil = ejectedUntil
}

/** The single process's rule (routes.ts), on the merged instance: a failing check first, then any ejection. */
function stateOf(instance: MergedInstanceView): InstanceView['state'] {
  if (instance.health !== 'passing') return 'unhealthy'
  return instance.ejectedIn > 0 ? 'ejected' : 'in-rotation'
}
