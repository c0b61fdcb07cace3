import {progress} from '../render/progress.js'
import {renderTable} from '../render/table.js'
import {plural} from '../text.js'
import {clusterUp, type ClusterKind, type ClusterView, MEMBER_HEAD, memberRows} from './index.js'

export interface ClusterUpRequest {
  kind: ClusterKind
  nodes: number
  name?: string
  basePort?: number
  timeoutMs: number
  /** Aborting stops the members started so far (Ctrl-C during the start). */
  signal: AbortSignal
}

/** Starts the cluster with a progress line on stderr that ends in one line saying where it is. */
export async function startCluster(request: ClusterUpRequest): Promise<ClusterView> {
  const {kind} = request
  const name = request.name ?? kind
  const shown = progress()
  shown.update(`starting ${plural(request.nodes, `${kind} member`)} of cluster "${name}"`)
  let view: ClusterView
  try {
    view = await clusterUp({...request, name, log: (message) => shown.update(message)})
  } catch (error) {
    shown.done()
    throw error
  }

  shown.done(`${kind} cluster "${name}" is up; leader ${view.leader ?? 'unknown'}; manifest ${view.manifest}`)
  return view
}

/** The members, and how to point svc at them. */
export async function renderClusterUp(view: ClusterView, tty: boolean): Promise<string> {
  const table = await renderTable(MEMBER_HEAD, memberRows(view), tty)
  return `${table}\n\nbackend: ${view.backendUri}\nuse it:  export SVC_BACKEND=${view.backendUri}`
}
