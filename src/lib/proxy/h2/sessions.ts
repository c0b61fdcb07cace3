import {Agent} from 'node:http'
import {type ClientHttp2Session, connect} from 'node:http2'

import {problem} from '../node-http-support.js'
import type {RouteTable, Upstream} from '../routes.js'

/** How an upstream instance is spoken to: its meta `protocol` (h2c or grpc: HTTP/2 with prior knowledge). */
export function upstreamProtocol(upstream: Upstream): 'h1' | 'h2c' {
  const protocol = upstream.instance.meta.protocol?.toLowerCase()
  return protocol === 'h2c' || protocol === 'grpc' ? 'h2c' : 'h1'
}

interface Held {
  service: string
  upstream: Upstream
  session?: Promise<ClientHttp2Session>
  agent?: Agent
  active: number
}

/**
 * The HTTP/2 gateway's connections to upstream instances: one pooled `http2.connect` session per h2c instance, one
 * keep-alive http.Agent per HTTP/1.1 instance. Those of instances that left the route table are closed once their
 * requests in flight end (a stream in flight on a leaving instance finishes on its session).
 */
export class UpstreamSessions {
  private readonly held = new Map<Upstream, Held>()
  private readonly sweeper: NodeJS.Timeout

  constructor(
    private readonly table: RouteTable,
    private readonly opts: {connectTimeoutMs: number; maxConnectionsPerUpstream: number},
  ) {
    this.sweeper = setInterval(() => this.sweep(), 1000)
    this.sweeper.unref()
  }

  /** The agent for an HTTP/1.1 instance; `release` when the request ends. */
  agent(service: string, upstream: Upstream): Agent {
    const held = this.hold(service, upstream)
    held.agent ??= new Agent({keepAlive: true, maxSockets: this.opts.maxConnectionsPerUpstream})
    return held.agent
  }

  /** A connected HTTP/2 session to an h2c instance (shared by every stream to it); `release` when the stream ends. */
  async session(service: string, upstream: Upstream): Promise<ClientHttp2Session> {
    const held = this.hold(service, upstream)
    const current = held.session
    if (current !== undefined) {
      const session = await current
      if (!session.closed && !session.destroyed) return session
    }

    held.session = this.connect(upstream, held)
    return held.session
  }

  acquire(service: string, upstream: Upstream): void {
    this.hold(service, upstream).active++
  }

  release(upstream: Upstream): void {
    const held = this.held.get(upstream)
    if (held !== undefined) held.active--
  }

  /** Closes every session and agent (streams in flight are cut). */
  close(): void {
    clearInterval(this.sweeper)
    for (const held of this.held.values()) this.drop(held, true)
    this.held.clear()
  }

  private hold(service: string, upstream: Upstream): Held {
    let held = this.held.get(upstream)
    if (held === undefined) {
      held = {service, upstream, active: 0}
      this.held.set(upstream, held)
    }

    return held
  }

  private async connect(upstream: Upstream, held: Held): Promise<ClientHttp2Session> {
    const session = connect(`http://${upstream.hostPort}`)
    const forget = (): void => {
      if (held.session === pending) held.session = undefined
    }

    const pending = new Promise<ClientHttp2Session>((resolve, reject) => {
      const timer = setTimeout(() => {
        session.destroy()
        reject(problem(`connect timed out after ${this.opts.connectTimeoutMs} ms`, 'ECONNECTTIMEOUT'))
      }, this.opts.connectTimeoutMs)
      session.once('connect', () => {
        clearTimeout(timer)
        resolve(session)
      })
      session.once('error', (error) => {
        clearTimeout(timer)
        reject(error)
      })
    })
    session.on('error', forget)
    session.on('goaway', forget)
    session.on('close', forget)
    // a pooled session must not keep the process alive once nothing else does
    session.unref()
    pending.catch(forget)
    return pending
  }

  /** Closes what belongs to instances no longer in the table, once idle. */
  private sweep(): void {
    for (const held of this.held.values()) {
      const current = this.table.services.get(held.service)?.upstreams.get(held.upstream.id)
      if (current === held.upstream || held.active > 0) continue
      this.held.delete(held.upstream)
      this.drop(held, false)
    }
  }

  private drop(held: Held, force: boolean): void {
    held.agent?.destroy()
    held.session?.then((session) => (force ? session.destroy() : session.close())).catch(() => {})
  }
}
