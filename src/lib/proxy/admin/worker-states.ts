import cluster, {type Worker} from 'node:cluster'

import type {Registry} from 'prom-client'

import {errorMessage} from '../../errors.js'
import type {ProxyEngine} from '../engine.js'
import type {ReadyWorker} from '../workers.js'
import {routesView, type RouteView} from './routes-view.js'

/** A worker's metrics as prom-client's registry gives them, the input of AggregatorRegistry.aggregate. */
export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>

/** What the primary asks a worker for; neither: a ping (is it answering?). */
export interface Want {
  metrics?: boolean
  routes?: boolean
}

/** A worker's answer. */
export interface WorkerState {
  n: number
  metrics?: MetricsJson
  routes?: RouteView[]
}

const REQUEST = 'svc:admin-request'
const REPLY = 'svc:admin-reply'

interface Request {
  type: typeof REQUEST
  id: number
  want: Want
}

interface Reply {
  type: typeof REPLY
  id: number
  metrics?: MetricsJson
  routes?: RouteView[]
  error?: string
}

/** In a worker: answers the primary's requests with this worker's metrics and routes, until the returned call. */
export function answerAdminRequests(proxy: Pick<ProxyEngine, 'metrics' | 'table'>): () => void {
  const onMessage = (message: unknown): void => {
    if (!isMessage<Request>(message, REQUEST)) return
    const {id, want} = message
    const answer = async (): Promise<Reply> => ({
      type: REPLY,
      id,
      metrics: want.metrics ? await proxy.metrics.registry.getMetricsAsJSON() : undefined,
      routes: want.routes ? routesView(proxy.table) : undefined,
    })
    answer()
      .catch((error: unknown): Reply => ({type: REPLY, id, error: errorMessage(error)}))
      // the callback takes a send on a closed channel (the primary stopping) instead of an 'error' event
      .then((reply) => process.connected && process.send?.(reply, undefined, {}, () => {}))
  }

  process.on('message', onMessage)
  return () => process.off('message', onMessage)
}

/**
 * In the primary: asks the ready workers over node:cluster IPC. One listener on the cluster for every request, so
 * the route page's polls and scrapes running at once add none; a worker that exits, fails or does not answer
 * within `timeoutMs` is left out of the answer.
 */
export class WorkerStates {
  private next = 0
  // by worker id, then request id
  private readonly pending = new Map<number, Map<number, (reply?: Reply) => void>>()

  private readonly onMessage = (worker: Worker, message: unknown): void => {
    if (!isMessage<Reply>(message, REPLY)) return
    this.pending.get(worker.id)?.get(message.id)?.(message)
  }

  private readonly onExit = (worker: Worker): void => {
    for (const settle of this.pending.get(worker.id)?.values() ?? []) settle()
  }

  constructor(private readonly timeoutMs: number) {
    cluster.on('message', this.onMessage)
    cluster.on('exit', this.onExit)
  }

  /** The states of those of `workers` that answered, in their order. */
  async ask(workers: readonly ReadyWorker[], want: Want): Promise<WorkerState[]> {
    const id = this.next++
    const request: Request = {type: REQUEST, id, want}
    const answers = await Promise.all(workers.map(({n, worker}) => this.askOne(worker, request, n)))
    return answers.flatMap((state) => (state === undefined ? [] : [state]))
  }

  /** Stops listening; requests still waiting settle without their workers. */
  close(): void {
    cluster.off('message', this.onMessage)
    cluster.off('exit', this.onExit)
    for (const byId of this.pending.values()) for (const settle of byId.values()) settle()
  }

  private askOne(worker: Worker, request: Request, n: number): Promise<WorkerState | undefined> {
    return new Promise((resolve) => {
      const byId = this.pending.get(worker.id) ?? new Map<number, (reply?: Reply) => void>()
      this.pending.set(worker.id, byId)
      let settled = false
      const settle = (reply?: Reply): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        byId.delete(request.id)
        if (byId.size === 0 && this.pending.get(worker.id) === byId) this.pending.delete(worker.id)
        resolve(
          reply === undefined || reply.error !== undefined
            ? undefined
            : {n, metrics: reply.metrics, routes: reply.routes},
        )
      }

      const timer = setTimeout(settle, this.timeoutMs)
      timer.unref()
      byId.set(request.id, settle)
      worker.send(request, undefined, (error: Error | null) => {
        if (error) settle()
      })
    })
  }
}

function isMessage<T extends {type: string}>(message: unknown, type: T['type']): message is T {
  return typeof message === 'object' && message !== null && (message as {type?: unknown}).type === type
}
