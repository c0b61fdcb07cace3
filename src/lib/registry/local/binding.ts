import type {Binding} from '../core/driver.js'
import type {OwnerHeartbeat} from './owners.js'

/** A local record's liveness: its owner's one heartbeat file, shared by every instance of the process. */
export class HeartbeatBinding implements Binding {
  constructor(
    private readonly heartbeat: OwnerHeartbeat,
    private readonly refreshMs: number,
  ) {}

  /** Presence is the lifecycle's readMany: a refresh only beats, once for all bindings within half a period. */
  async refresh(): Promise<'ok' | 'missing'> {
    await this.heartbeat.beat(this.refreshMs / 2)
    return 'ok'
  }

  async release(): Promise<void> {}
}
