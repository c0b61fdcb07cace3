import {errorMessage} from '../../errors.js'
import type {ReadResult, SkippedRecord} from '../core/driver.js'
import {validateServiceName} from '../validate.js'
import {pipelined} from './pipeline.js'
import {decodeZnode} from './records.js'
import type {Session} from './session.js'
import {children, data, type Watcher} from './znodes.js'

/** DESIGN.md's layout: `<base>/<service>/<address>:<port>`, and how its znodes are read. */
export class Layout {
  readonly base: string

  constructor(base: string) {
    this.base = base
  }

  servicePath(service: string): string {
    return `${this.base}/${service}`
  }

  nodePath(service: string, child: string): string {
    return `${this.servicePath(service)}/${child}`
  }

  /**
   * A service znode whose name svc cannot use (another tool's), as a skipped record keyed by its name, as the core
   * keys it in a service listing (one warning for both); undefined when it is usable.
   */
  checkService(name: string): SkippedRecord | undefined {
    try {
      validateServiceName(name)
      return undefined
    } catch (error) {
      return {skipped: true, key: name, reason: `it is not a service name svc can use (${errorMessage(error)})`}
    }
  }

  /** One instance znode; undefined when it is gone. */
  async readNode(s: Session, service: string, child: string, watcher?: Watcher): Promise<ReadResult | undefined> {
    const path = this.nodePath(service, child)
    const node = await data(s, path, watcher)
    return node && decodeZnode(service, child, path, node.data)
  }

  /** Every record of one service with the znode each lives in, skipped ones included. */
  async readService(s: Session, service: string): Promise<Array<{child: string; record: ReadResult}>> {
    const names = (await children(s, this.servicePath(service))) ?? []
    const nodes = await pipelined(names, async (child) => ({child, record: await this.readNode(s, service, child)}))
    return nodes.flatMap(({child, record}) => (record ? [{child, record}] : []))
  }
}
