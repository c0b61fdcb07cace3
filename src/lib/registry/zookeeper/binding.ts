import {UserError} from '../../errors.js'
import {isSkipped, type Binding, type OwnedRecord, type ReadResult} from '../core/driver.js'
import type {ZkClient} from './client.js'
import {zkError} from './errors.js'
import type {Layout} from './layout.js'
import {decodeZnode, encodePayload, nodeName} from './records.js'
import type {Session} from './session.js'
import {createEphemeral, data, mkdirp, remove, setData, type Watcher} from './znodes.js'

/** A record's ephemeral znode, bound to the session that created it: the record lives as long as that session. */
export class ZkBinding implements Binding {
  readonly session: Session
  readonly path: string
  readonly service: string
  readonly id: string
  /** The znode's name under its service. */
  readonly child: string
  /**
   * Armed on the znode by every read-back: ZooKeeper says when the znode is deleted or its data changes (whoever
   * did it), so until then the record read last still stands and the presence check need not read it again.
   */
  readonly watcher: Watcher = () => {
    this.changes++
    this.confirmed = undefined
  }

  private readonly client: ZkClient
  private readonly released: (binding: ZkBinding) => void
  /** Notifications seen: a read that one overtook cannot be trusted. */
  private changes = 0
  private confirmed?: {session: Session; record: ReadResult}

  constructor(
    client: ZkClient,
    session: Session,
    record: OwnedRecord,
    path: string,
    released: (binding: ZkBinding) => void,
  ) {
    this.client = client
    this.session = session
    this.path = path
    this.service = record.instance.service
    this.id = record.instance.id
    this.child = nodeName(record.instance)
    this.released = released
  }

  /**
   * The client keeps the session alive by itself, and every record of the registry lives on it: this only checks that
   * the session that holds the znode is still the client's. Whether the znode is there and still ours, the
   * lifecycle's read-back says (one request per record less each period).
   */
  async refresh(): Promise<'ok' | 'missing'> {
    return this.session.dead || this.client.current !== this.session ? 'missing' : 'ok'
  }

  async release(): Promise<void> {
    this.forget()
    this.released(this)
  }

  /** The record as read last under the data watch on `session`, while the watch has not fired. */
  confirmedOn(session: Session): ReadResult | undefined {
    const known = this.confirmed
    return known && known.session === session && !session.dead ? known.record : undefined
  }

  /** Reads the znode back and arms the data watch; the record is kept when it is still this binding's. */
  async readBack(session: Session, layout: Layout): Promise<ReadResult | undefined> {
    const before = this.changes
    const record = await layout.readNode(session, this.service, this.child, this.watcher)
    const ours = record !== undefined && !isSkipped(record) && record.instance.id === this.id
    // a notification that came while the read was on its way may be about a change the read did not see
    this.confirmed = ours && this.changes === before ? {session, record} : undefined
    return record
  }

  /** Forgets the record read last (a reconnection, after which a notification may have been lost). */
  forget(): void {
    this.confirmed = undefined
  }
}

/** The znode path of a record. */
export function recordPath(layout: Layout, record: OwnedRecord): string {
  return layout.nodePath(record.instance.service, nodeName(record.instance))
}

/**
 * Creates the record's ephemeral znode on `s`. The core has checked who owns the id; a znode at the same path that
 * holds the same id under another session (a restarted owner's) is replaced, one of another id is refused.
 */
export async function createNode(s: Session, layout: Layout, record: OwnedRecord): Promise<void> {
  const {instance} = record
  const path = recordPath(layout, record)
  const bytes = encodePayload(instance, record.owner)
  for (let round = 0; round < 5; round++) {
    const created = await createEphemeral(s, path, bytes)
    if (created === 'created') return
    if (created === 'no-parent') {
      await mkdirp(s, layout.servicePath(instance.service))
      continue
    }

    const existing = await data(s, path)
    if (!existing) continue
    // the layout keys instances by address and port: another id there is another instance, whoever wrote it
    const other = decodeZnode(instance.service, nodeName(instance), path, existing.data)
    if (isSkipped(other) || other.instance.id !== instance.id) {
      const {address, port, service} = instance
      const holder = isSkipped(other) ? 'a znode svc cannot read' : `instance "${other.instance.id}"`
      throw new UserError(
        `${address}:${port} of ${service} is already registered as ${holder} (${path})`,
        isSkipped(other)
          ? `remove ${path} first`
          : `deregister it first: svc deregister ${service} ${other.instance.id}`,
        1,
      )
    }

    if (existing.stat.ephemeralOwner.equals(s.id)) {
      // ours already: an earlier attempt got through before its answer was lost
      if (await setData(s, path, bytes, existing.stat.version)) return
      continue
    }

    await remove(s, path, existing.stat.version)
  }

  throw zkError(`register ${path}: the znode kept changing`, true)
}
