import {useEffect, useReducer} from 'react'

import {errorMessage} from '../../errors.js'
import {sortInstances} from '../../registry/core/diff.js'
import type {Registry, ServiceInstance, WatchEvent} from '../../registry/types.js'

export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'session-lost'

/** The last change, kept for a moment so the view can highlight it. */
export interface LastChange {
  type: 'added' | 'changed' | 'removed'
  service: string
  id: string
  at: number
}

export interface RegistryWatchState {
  /** Service name to its instances, sorted; services without instances are dropped. */
  services: ReadonlyMap<string, readonly ServiceInstance[]>
  /** False until the first snapshot arrives. */
  loaded: boolean
  connection: ConnectionState
  /** The backend's words for the last status change. */
  detail?: string
  /** Why the watch stream failed; cleared by the next snapshot. */
  error?: string
  lastChange?: LastChange
}

export interface RetryOptions {
  initialMs: number
  maxMs: number
}

export interface RegistryWatchOptions {
  /** How long the last change stays highlighted. */
  highlightMs?: number
  /** Backoff between re-subscriptions after the stream fails. */
  retry?: RetryOptions
}

export type WatchAction =
  {type: 'event'; event: WatchEvent; at: number} | {type: 'failed'; error: string} | {type: 'expire'; at: number}

export const INITIAL_WATCH_STATE: RegistryWatchState = {services: new Map(), loaded: false, connection: 'connecting'}

const DEFAULT_RETRY: RetryOptions = {initialMs: 500, maxMs: 10_000}

/** Applies one watch event (or stream failure) to the tree's model; pure, so React can batch and tests can call it. */
export function watchReducer(state: RegistryWatchState, action: WatchAction): RegistryWatchState {
  switch (action.type) {
    case 'failed': {
      return {...state, connection: 'reconnecting', error: action.error}
    }

    case 'expire': {
      return state.lastChange?.at === action.at ? {...state, lastChange: undefined} : state
    }

    case 'event': {
      return applyEvent(state, action.event, action.at)
    }
  }
}

function applyEvent(state: RegistryWatchState, event: WatchEvent, at: number): RegistryWatchState {
  switch (event.type) {
    case 'snapshot': {
      const services = new Map<string, ServiceInstance[]>()
      for (const instance of event.instances) {
        const list = services.get(instance.service)
        if (list) list.push(instance)
        else services.set(instance.service, [instance])
      }

      for (const list of services.values()) sortInstances(list)
      const connection = state.connection === 'session-lost' ? state.connection : 'connected'
      return {...state, services, loaded: true, connection, error: undefined}
    }

    case 'status': {
      return {...state, connection: event.state, detail: event.detail}
    }

    case 'added':
    case 'changed':
    case 'removed': {
      const {instance} = event
      const current = state.services.get(instance.service) ?? []
      const rest = current.filter((i) => i.id !== instance.id)
      const next = event.type === 'removed' ? rest : sortInstances([...rest, instance])
      const services = new Map(state.services)
      if (next.length > 0) services.set(instance.service, next)
      else services.delete(instance.service)
      return {...state, services, lastChange: {type: event.type, service: instance.service, id: instance.id, at}}
    }
  }
}

/**
 * Follows `registry.watch(service)` into a map of services to instances. A failing or ending stream never throws
 * into the view: the error is kept in the state and the hook re-subscribes with exponential backoff.
 */
export function useRegistryWatch(
  registry: Registry,
  service?: string,
  {highlightMs = 1500, retry = DEFAULT_RETRY}: RegistryWatchOptions = {},
): RegistryWatchState {
  const [state, dispatch] = useReducer(watchReducer, INITIAL_WATCH_STATE)
  const {initialMs, maxMs} = retry

  useEffect(() => {
    const controller = new AbortController()
    const {signal} = controller
    // never rejects: failures become state
    const follow = async (): Promise<void> => {
      let delay = initialMs
      while (!signal.aborted) {
        try {
          for await (const event of registry.watch(service, {signal})) {
            if (signal.aborted) break
            if (event.type === 'snapshot') delay = initialMs
            dispatch({type: 'event', event, at: Date.now()})
          }

          if (signal.aborted) return
          dispatch({type: 'failed', error: 'the watch stream ended'})
        } catch (error) {
          if (signal.aborted) return
          dispatch({type: 'failed', error: errorMessage(error)})
        }

        await pause(delay, signal)
        delay = Math.min(maxMs, delay * 2)
      }
    }

    follow()
    return () => controller.abort()
  }, [registry, service, initialMs, maxMs])

  const changedAt = state.lastChange?.at
  useEffect(() => {
    if (changedAt === undefined) return
    const timer = setTimeout(() => dispatch({type: 'expire', at: changedAt}), highlightMs)
    return () => clearTimeout(timer)
  }, [changedAt, highlightMs])

  return state
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }

    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, {once: true})
  })
}
