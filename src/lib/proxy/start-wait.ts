import {formatDuration} from '../duration.js'
import {BackendError, BackendUnavailableError} from '../errors.js'
import type {Registry, WatchEvent} from '../registry/types.js'

/** How long `svc proxy` waits for the registry's first snapshot by default (--start-timeout). */
export const START_TIMEOUT_MS = 15_000

/**
 * What the proxy saw of the registry while it waited for the first snapshot, so that a timeout says the truth:
 * nobody answered, or the backend answered and the snapshot was slow (with the watch's last progress line).
 */
export class StartWait {
  private answered?: string

  /** Notes a status event of the watch; `connected` means a backend member answered. */
  see(event: WatchEvent): void {
    if (event.type === 'status' && event.state === 'connected') this.answered = event.detail
  }

  /** The error for a first snapshot that did not come within `timeoutMs`. */
  timedOut(registry: Registry, timeoutMs: number): Error {
    const waited = formatDuration(timeoutMs)
    if (this.answered === undefined) {
      return new BackendUnavailableError(registry.kind, registry.description, `no answer within ${waited}`)
    }

    return new BackendError(
      registry.kind,
      `${registry.kind} answered (${this.answered}) but the first snapshot of ${registry.description} was not complete within ${waited}`,
      {
        hint: `raise --start-timeout (now ${waited}) for a registry this large, or check the load on the servers`,
        transient: true,
      },
    )
  }
}
