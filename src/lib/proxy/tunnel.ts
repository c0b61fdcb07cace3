import type {Socket} from 'node:net'

/**
 * Splices a client's socket to an upstream's after a 101: `toUpstream` (what the client sent after its request)
 * and `toClient` (what the upstream sent after its 101) go first. Either side closing, failing, or both idling for
 * `idleMs` closes both; `onClose` runs once.
 */
export function splice(
  client: Socket,
  upstream: Socket,
  toUpstream: Buffer,
  toClient: Buffer,
  idleMs: number,
  onClose: () => void,
): void {
  let open = true
  const close = (): void => {
    if (!open) return
    open = false
    client.destroy()
    upstream.destroy()
    onClose()
  }

  for (const socket of [client, upstream]) {
    socket.setTimeout(idleMs)
    socket.on('timeout', close)
    socket.on('error', close)
    socket.on('close', close)
  }

  if (toClient.length > 0) client.write(toClient)
  if (toUpstream.length > 0) upstream.write(toUpstream)
  upstream.pipe(client)
  client.pipe(upstream)
  client.resume()
  upstream.resume()
}
