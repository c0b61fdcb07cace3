import type {Event} from 'node-zookeeper-client'

import {isTransient} from '../../errors.js'
import type {DriverWatchSink, ReadResult} from '../core/driver.js'
import {sleep} from '../options.js'
import type {SessionFollower, ZkClient} from './client.js'
import type {Layout} from './layout.js'
import {pipelined} from './pipeline.js'
import type {Session} from './session.js'
import {children, stat, type Watcher} from './znodes.js'

/** The services a pass read again, or all of them. */
type Touched = Set<string> | 'all'

/**
 * Follows one service (or all of them) with native watches: a children watch on the service's znode (an exists
 * watch while it is missing), a data watch on every instance, and for all services a children watch on the base.
 * Each notification re-reads only what changed and publishes only the services it touched; a (re)connection
 * re-reads everything, in a bounded pipeline, and publishes the whole state.
 */
export class WatchLoop implements SessionFollower {
  private readonly client: ZkClient
  private readonly layout: Layout
  private readonly service?: string
  private readonly sink: DriverWatchSink
  private session?: Session
  private watcher?: {session: Session; fn: Watcher}
  /** service -> znode name -> record; a service whose name svc cannot use maps to its skipped record. */
  private readonly cache = new Map<string, Map<string, ReadResult> | ReadResult>()
  private readonly abort = new AbortController()
  private full = true
  private baseChanged = false
  private readonly servicesChanged = new Set<string>()
  private readonly nodesChanged = new Set<string>()
  private running = false
  private stopped = false
  private failures = 0

  constructor(client: ZkClient, layout: Layout, service: string | undefined, sink: DriverWatchSink) {
    this.client = client
    this.layout = layout
    this.service = service
    this.sink = sink
    if (service !== undefined) this.cache.set(service, new Map())
  }

  start(): () => void {
    this.client.followers.add(this)
    this.client.live().then(
      (session) => {
        if (!this.stopped && !this.session) this.connected(session, `member ${session.member}`)
      },
      (error: unknown) => {
        // while a new session is being opened, the client reports it when it has one
        if (!this.stopped && !(isTransient(error) && this.client.recovering)) this.sink.fail(error)
      },
    )
    return () => this.stop()
  }

  end(): void {
    this.stop()
  }

  connected(session: Session, detail: string): void {
    if (this.stopped) return
    this.session = session
    this.sink.status('connected', detail)
    this.full = true
    this.schedule()
  }

  disconnected(detail: string): void {
    if (!this.stopped) this.sink.status('reconnecting', detail)
  }

  expired(detail: string): void {
    if (this.stopped) return
    this.session = undefined
    this.sink.status('session-lost', detail)
  }

  private stop(): void {
    if (this.stopped) return
    this.stopped = true
    this.abort.abort()
    this.client.followers.delete(this)
  }

  private watcherFor(session: Session): Watcher {
    if (this.watcher?.session !== session) {
      this.watcher = {session, fn: (event) => this.onEvent(session, event)}
    }

    return this.watcher.fn
  }

  private onEvent(session: Session, event: Event): void {
    if (session !== this.session || this.stopped) return
    const {base} = this.layout
    const path = event.getPath()
    if (path === base) {
      this.baseChanged = true
    } else if (path.startsWith(`${base}/`)) {
      const [service, child] = path.slice(base.length + 1).split('/')
      if (service === undefined || (this.service !== undefined && service !== this.service)) return
      if (child === undefined) this.servicesChanged.add(service)
      else this.nodesChanged.add(`${service}/${child}`)
    } else {
      return
    }

    this.schedule()
  }

  private schedule(): void {
    if (this.running || this.stopped) return
    this.running = true
    this.pump().catch((error: unknown) => this.sink.fail(error))
  }

  private async pump(): Promise<void> {
    try {
      while (!this.stopped) {
        const session = this.session
        const pending = this.full || this.baseChanged || this.servicesChanged.size > 0 || this.nodesChanged.size > 0
        if (!session || session.dead || !pending) return
        try {
          const touched = await this.refresh(session)
          this.failures = 0
          if (session === this.session && !this.stopped) this.publish(touched)
        } catch (error) {
          if (this.stopped) return
          if (!isTransient(error)) {
            this.sink.fail(error)
            return
          }

          this.full = true
          // a connection that is down comes back with a 'connected' call, which resumes this loop
          if (session !== this.session || !session.connected) return
          await sleep(this.client.retryDelay(this.failures++), this.abort.signal)
        }
      }
    } finally {
      this.running = false
    }
  }

  /** Reads what the notifications since the last pass said changed (everything after a (re)connection). */
  private async refresh(session: Session): Promise<Touched> {
    const full = this.full
    const services = new Set(this.servicesChanged)
    const nodes = new Set(this.nodesChanged)
    const listBase = this.service === undefined && (full || this.baseChanged)
    this.full = false
    this.baseChanged = false
    this.servicesChanged.clear()
    this.nodesChanged.clear()
    const watcher = this.watcherFor(session)
    const {base} = this.layout
    const touched = new Set<string>()
    try {
      if (listBase) {
        const names = await this.client.run(`watch ${base}`, (s) => this.children(s, base, watcher), session)
        const listed = new Set(names)
        for (const name of this.cache.keys()) {
          if (listed.has(name)) continue
          this.cache.delete(name)
          touched.add(name)
        }

        for (const name of names) {
          if (this.cache.has(name)) continue
          const unusable = this.layout.checkService(name)
          this.cache.set(name, unusable ?? new Map())
          touched.add(name)
          if (!unusable) services.add(name)
        }
      }

      const known = (s: string): boolean => this.cache.get(s) instanceof Map
      const listed = full ? [...this.cache.keys()].filter((s) => known(s)) : [...services].filter((s) => known(s))
      const unread = await pipelined(listed, (service) => this.listService(session, watcher, service, full))
      const reads = unread.flat()
      if (!full) for (const key of nodes) reads.push(splitKey(key))
      await pipelined(reads, ([service, child]) => this.refreshChanged(session, watcher, service, child))
      if (full) return 'all'
      for (const service of listed) touched.add(service)
      for (const [service] of reads) touched.add(service)
      return touched
    } catch (error) {
      // nothing is lost: the next pass reads everything again
      this.full = true
      throw error
    }
  }

  private async refreshChanged(session: Session, watcher: Watcher, service: string, child: string): Promise<void> {
    const known = this.cache.get(service)
    if (known instanceof Map) await this.refreshNode(session, watcher, known, service, child)
  }

  /** Lists a service with a watch, forgets the znodes that left, and returns those to read. */
  private async listService(
    session: Session,
    watcher: Watcher,
    service: string,
    full: boolean,
  ): Promise<Array<[string, string]>> {
    const path = this.layout.servicePath(service)
    const names = await this.client.run(`watch ${path}`, (s) => this.children(s, path, watcher), session)
    const known = this.cache.get(service)
    if (!(known instanceof Map)) return []
    const listed = new Set(names)
    for (const child of known.keys()) if (!listed.has(child)) known.delete(child)
    return names.filter((child) => full || !known.has(child)).map((child) => [service, child])
  }

  private async refreshNode(
    session: Session,
    watcher: Watcher,
    known: Map<string, ReadResult>,
    service: string,
    child: string,
  ): Promise<void> {
    const path = this.layout.nodePath(service, child)
    const node = await this.client.run(
      `watch ${path}`,
      (s) => this.layout.readNode(s, service, child, watcher),
      session,
    )
    if (node === undefined) known.delete(child)
    else known.set(child, node)
  }

  /** Children with a watch; while the znode is missing, an exists watch says when it appears. */
  private async children(s: Session, path: string, watcher: Watcher): Promise<string[]> {
    // in the all-services watch, the base's children watch already covers a service's znode coming and going
    const waitForCreation = path === this.layout.base || this.service !== undefined
    for (let round = 0; round < 3; round++) {
      const names = await children(s, path, watcher)
      if (names) return names
      if (!waitForCreation || !(await stat(s, path, watcher))) return []
    }

    return []
  }

  /** The whole state after a full pass; else each service the pass touched, and no other. */
  private publish(touched: Touched): void {
    if (touched === 'all') {
      if (!this.sink.closed) this.sink.publish(this.records(), this.service)
      return
    }

    for (const name of touched) {
      if (this.sink.closed) return
      const known = this.cache.get(name)
      const records = known instanceof Map ? [...known.values()] : known ? [known] : []
      this.sink.publish(records, this.service ?? name)
    }
  }

  private records(): ReadResult[] {
    const all: ReadResult[] = []
    for (const known of this.cache.values()) {
      if (known instanceof Map) all.push(...known.values())
      else all.push(known)
    }

    return all
  }
}

/** `service/child` as its two parts. */
function splitKey(key: string): [string, string] {
  const slash = key.indexOf('/')
  return [key.slice(0, slash), key.slice(slash + 1)]
}
