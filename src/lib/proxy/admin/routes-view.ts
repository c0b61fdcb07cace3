import type {ServiceStats} from '../metrics.js'
import type {RouteSnapshot, RouteTable} from '../routes.js'

/** One instance as /routes shows it: the table's view plus the requests it served. */
export type InstanceView = RouteSnapshot['instances'][number] & {requests: number}

/** One service as the admin's /routes shows it: the table's view plus request counters since the start. */
export interface RouteView extends RouteSnapshot {
  /** Requests answered for this service (all instances, and the proxy's own answers such as 503). */
  requests: number
  instances: InstanceView[]
}

/** The admin's /routes body: the route table with each service's and instance's request counts (the page's rates). */
export function routesView(table: RouteTable): RouteView[] {
  return table.snapshot().map((service) => {
    const stats = table.services.get(service.service)?.stats as ServiceStats | undefined
    return {
      ...service,
      requests: stats?.total ?? 0,
      instances: service.instances.map((instance) => ({
        ...instance,
        requests: stats?.byInstance.get(instance.id) ?? 0,
      })),
    }
  })
}
