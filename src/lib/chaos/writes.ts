import type zookeeper from 'node-zookeeper-client'
import type {Client} from 'node-zookeeper-client'

import {httpRequest} from '../cluster/probe.js'
import {sleep} from '../cluster/process.js'
import {errorMessage} from '../errors.js'
import type {HostPort} from '../registry/spec.js'
import {within} from '../timeout.js'
import type {ClusterSpec} from './members.js'

/**
 * Where the probe writes: one key per write under a folder of the drill's own, written straight through the
 * backend's replicated store (ZooKeeper znodes, etcd keys, Consul KV), each write acknowledged only once the
 * backend committed it; read back at the end with a quorum read.
 */
export interface ProbeStore {
  /** Where the keys live, for messages. */
  readonly where: string
  write(seq: number): Promise<void>
  /** The sequence numbers present now. */
  readAll(): Promise<Set<number>>
  /** Removes the drill's folder. */
  cleanup(): Promise<void>
  close(): Promise<void>
}

const b64 = (text: string): string => Buffer.from(text).toString('base64')

/** The first key after every key that starts with `prefix` (etcd's range_end for a prefix). */
function prefixEnd(prefix: string): string {
  const bytes = Buffer.from(prefix)
  bytes[bytes.length - 1] = (bytes.at(-1) ?? 0) + 1
  return bytes.toString('base64')
}

/** Tries each member in turn, starting with the last one that answered. */
class Rotation {
  private next = 0
  constructor(private readonly hosts: readonly HostPort[]) {}

  async call<T>(fn: (host: HostPort) => Promise<T>): Promise<T> {
    const host = this.hosts[this.next % this.hosts.length] as HostPort
    try {
      return await fn(host)
    } catch (error) {
      this.next++
      throw error
    }
  }

  indexOf(host: HostPort): number {
    return this.hosts.indexOf(host)
  }

  /** Every member once, until one succeeds. */
  async any<T>(fn: (host: HostPort) => Promise<T>): Promise<T> {
    let last: unknown
    for (let i = 0; i < this.hosts.length; i++) {
      try {
        return await this.call(fn)
      } catch (error) {
        last = error
      }
    }

    throw last
  }
}

async function expectOk(
  host: HostPort,
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  path: string,
  timeoutMs: number,
  body?: string,
  token?: string,
): Promise<string> {
  // a token goes in a header: a query string would show in error messages
  const answer = await httpRequest(
    host.host,
    host.port,
    method,
    path,
    timeoutMs,
    body,
    token ? {'x-consul-token': token} : {},
  )
  if (answer.status !== 200) throw new Error(`HTTP ${answer.status}: ${answer.body.trim().slice(0, 120)}`)
  return answer.body
}

class EtcdStore implements ProbeStore {
  readonly where: string
  private readonly rotation: Rotation
  constructor(
    private readonly spec: Extract<ClusterSpec, {kind: 'etcd'}>,
    private readonly prefix: string,
    private readonly timeoutMs: number,
  ) {
    this.rotation = new Rotation(spec.hosts)
    this.where = `etcd keys ${prefix}*`
  }

  async write(seq: number): Promise<void> {
    const body = JSON.stringify({key: b64(`${this.prefix}${seq}`), value: b64(String(Date.now()))})
    await this.rotation.call((h) => expectOk(h, 'POST', '/v3/kv/put', this.timeoutMs, body))
  }

  async readAll(): Promise<Set<number>> {
    // a range read is linearizable by default: it goes through the leader's read index
    // eslint-disable-next-line camelcase -- etcd's JSON field names
    const body = JSON.stringify({key: b64(this.prefix), range_end: prefixEnd(this.prefix), keys_only: true})
    const text = await this.rotation.any((h) => expectOk(h, 'POST', '/v3/kv/range', 5000, body))
    const parsed = JSON.parse(text) as {kvs?: Array<{key?: string}>}
    const seqs = new Set<number>()
    for (const kv of parsed.kvs ?? []) {
      const key = Buffer.from(kv.key ?? '', 'base64').toString()
      seqs.add(Number(key.slice(this.prefix.length)))
    }

    return seqs
  }

  async cleanup(): Promise<void> {
    // eslint-disable-next-line camelcase -- etcd's JSON field names
    const body = JSON.stringify({key: b64(this.prefix), range_end: prefixEnd(this.prefix)})
    await this.rotation.any((h) => expectOk(h, 'POST', '/v3/kv/deleterange', 5000, body))
  }

  async close(): Promise<void> {}
}

class ConsulStore implements ProbeStore {
  readonly where: string
  private readonly rotation: Rotation
  constructor(
    spec: Extract<ClusterSpec, {kind: 'consul'}>,
    private readonly folder: string,
    private readonly timeoutMs: number,
  ) {
    this.rotation = new Rotation(spec.hosts)
    this.where = `Consul KV ${folder}/`
    this.token = spec.token
  }

  private readonly token: string | undefined

  private path(suffix: string): string {
    return `/v1/kv/${this.folder}${suffix}`
  }

  async write(seq: number): Promise<void> {
    const body = await this.rotation.call((h) =>
      expectOk(h, 'PUT', this.path(`/${seq}`), this.timeoutMs, String(Date.now()), this.token),
    )
    if (body.trim() !== 'true') throw new Error(`Consul answered ${body.trim()}`)
  }

  async readAll(): Promise<Set<number>> {
    const seqs = new Set<number>()
    let text: string
    try {
      text = await this.rotation.any((h) =>
        expectOk(h, 'GET', this.path('/?keys&consistent'), 5000, undefined, this.token),
      )
    } catch (error) {
      if (errorMessage(error).startsWith('HTTP 404')) return seqs
      throw error
    }

    for (const key of JSON.parse(text) as string[]) seqs.add(Number(key.slice(this.folder.length + 1)))
    return seqs
  }

  async cleanup(): Promise<void> {
    await this.rotation.any((h) => expectOk(h, 'DELETE', this.path('?recurse'), 5000, undefined, this.token))
  }

  async close(): Promise<void> {}
}

/**
 * One session per member, each tied to that member alone: a write goes through the member that answered last and
 * moves to the next on failure, so a frozen member (whose connection stays open) holds up one write, not all.
 */
class ZooKeeperStore implements ProbeStore {
  readonly where: string
  private readonly clients: Client[]
  private readonly connected: Array<Promise<void>>
  private readonly rotation: Rotation
  constructor(
    zk: typeof zookeeper,
    spec: Extract<ClusterSpec, {kind: 'zk'}>,
    private readonly folder: string,
    private readonly timeoutMs: number,
  ) {
    this.where = `ZooKeeper znodes ${folder}/`
    this.clients = spec.hosts.map((h) =>
      zk.createClient(`${h.host}:${h.port}`, {sessionTimeout: 6000, spinDelay: 100, retries: 0}),
    )
    this.connected = this.clients.map(
      (client) =>
        new Promise((resolve) => {
          client.once('connected', () => resolve())
        }),
    )
    for (const client of this.clients) client.connect()
    this.rotation = new Rotation(spec.hosts)
  }

  private clientFor(host: HostPort): Client {
    return this.clients[this.rotation.indexOf(host)] as Client
  }

  private call<T>(
    fn: (done: (error: Error | zookeeper.Exception | null, value: T) => void) => void,
    timeoutMs: number,
  ): Promise<T> {
    return within(
      new Promise<T>((resolve, reject) => {
        fn((error, value) => (error ? reject(new Error(error.toString())) : resolve(value)))
      }),
      timeoutMs,
      () => new Error(`no answer from ZooKeeper within ${timeoutMs} ms`),
    )
  }

  async open(): Promise<void> {
    await within(Promise.any(this.connected), 10_000, () => new Error('could not connect to ZooKeeper within 10 s'))
    await this.rotation.any((h) => this.call<string>((done) => this.clientFor(h).mkdirp(this.folder, done), 5000))
  }

  async write(seq: number): Promise<void> {
    const data = Buffer.from(String(Date.now()))
    await this.rotation.call((h) =>
      this.call<string>((done) => this.clientFor(h).create(`${this.folder}/${seq}`, data, done), this.timeoutMs),
    )
  }

  /** The union over every member that answers: a znode is in a member's tree only once the quorum committed it. */
  async readAll(): Promise<Set<number>> {
    const answers = await Promise.allSettled(
      this.clients.map((client) => this.call<string[]>((done) => client.getChildren(this.folder, done), 3000)),
    )
    const seqs = new Set<number>()
    let answered = false
    for (const answer of answers) {
      if (answer.status !== 'fulfilled') continue
      answered = true
      for (const child of answer.value) seqs.add(Number(child))
    }

    if (!answered) throw new Error(`no ZooKeeper member listed ${this.folder}`)
    return seqs
  }

  async cleanup(): Promise<void> {
    await this.rotation.any(async (h) => {
      const client = this.clientFor(h)
      const children = await this.call<string[]>((done) => client.getChildren(this.folder, done), 5000)
      await Promise.all(
        children.map((c) =>
          this.call<void>((done) => client.remove(`${this.folder}/${c}`, -1, (e) => done(e, undefined)), 5000),
        ),
      )
      await this.call<void>((done) => client.remove(this.folder, -1, (e) => done(e, undefined)), 5000)
    })
  }

  async close(): Promise<void> {
    for (const client of this.clients) client.close()
  }
}

/** Retries `fn` (a read-back or a clean-up) while the backend recovers, until `timeoutMs` passed. */
export async function retrying<T>(fn: () => Promise<T>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      return await fn()
    } catch (error) {
      if (Date.now() >= deadline) throw error
      await sleep(250)
    }
  }
}

/** Opens the probe's store for a drill; `id` names the drill's folder. */
export async function openProbeStore(spec: ClusterSpec, id: string, timeoutMs = 500): Promise<ProbeStore> {
  switch (spec.kind) {
    case 'etcd': {
      return new EtcdStore(spec, `/svc-chaos/${id}/`, timeoutMs)
    }

    case 'consul': {
      return new ConsulStore(spec, `svc-chaos/${id}`, timeoutMs)
    }

    case 'zk': {
      // loaded only for a ZooKeeper drill: it costs start-up time
      const {default: zk} = await import('node-zookeeper-client')
      const store = new ZooKeeperStore(zk, spec, `/svc-chaos/${id}`, timeoutMs)
      try {
        await store.open()
      } catch (error) {
        await store.close()
        throw error
      }

      return store
    }
  }
}

/** One write of the probe: when it started and ended, and whether the backend acknowledged it. */
export interface WriteRecord {
  seq: number
  start: number
  end: number
  ok: boolean
  error?: string
}

/** Writes one key every `intervalMs`, one at a time, until stopped; keeps every outcome. */
export class WriteProbe {
  readonly records: WriteRecord[] = []
  private running = false
  private loop: Promise<void> | undefined

  constructor(
    private readonly store: ProbeStore,
    private readonly intervalMs = 50,
  ) {}

  start(): void {
    this.running = true
    this.loop = this.run()
  }

  private async run(): Promise<void> {
    let seq = 0
    while (this.running) {
      const start = Date.now()
      const record: WriteRecord = {seq: ++seq, start, end: start, ok: false}
      try {
        await this.store.write(record.seq)
        record.ok = true
      } catch (error) {
        record.error = errorMessage(error)
      }

      record.end = Date.now()
      this.records.push(record)
      await sleep(Math.max(0, this.intervalMs - (record.end - start)))
    }
  }

  /** The first acknowledgement at or after `time`. */
  firstAckAfter(time: number): WriteRecord | undefined {
    return this.records.find((r) => r.ok && r.start >= time)
  }

  async stop(): Promise<void> {
    this.running = false
    await this.loop
  }
}

export interface WriteSummary {
  intervalMs: number
  attempted: number
  acknowledged: number
  failed: number
  /** Acknowledged before the fault. */
  ackedBeforeFault: number
  /** The writes were read back (when not, `lost` is unknown and counts nothing). */
  verified: boolean
  /** Acknowledged (before or after the fault) and missing from the read-back. */
  lost: number
  lostSeqs: number[]
  /** The longest time without an acknowledgement while the drill ran (includes one interval). */
  unavailableMs: number
  /** The first write that started after the fault and was acknowledged: ms after the fault it was. */
  firstAckAfterFaultMs?: number
}

/** Sums up the probe's writes against the read-back. */
export function summarizeWrites(
  records: readonly WriteRecord[],
  present: ReadonlySet<number> | undefined,
  faultAt: number,
  intervalMs: number,
): WriteSummary {
  const acked = records.filter((r) => r.ok)
  const lostSeqs = present ? acked.filter((r) => !present.has(r.seq)).map((r) => r.seq) : []
  let unavailableMs = 0
  let previous: number | undefined
  for (const r of acked) {
    if (previous !== undefined) unavailableMs = Math.max(unavailableMs, r.end - previous)
    previous = r.end
  }

  // the writes that never came back (the probe stopped while the backend was unavailable)
  const last = records.at(-1)
  if (previous !== undefined && last && !last.ok) unavailableMs = Math.max(unavailableMs, last.end - previous)
  const summary: WriteSummary = {
    intervalMs,
    attempted: records.length,
    acknowledged: acked.length,
    failed: records.length - acked.length,
    ackedBeforeFault: acked.filter((r) => r.end < faultAt).length,
    verified: present !== undefined,
    lost: lostSeqs.length,
    lostSeqs: lostSeqs.slice(0, 20),
    unavailableMs,
  }
  const first = acked.find((r) => r.start >= faultAt)
  if (first) summary.firstAckAfterFaultMs = first.end - faultAt
  return summary
}
