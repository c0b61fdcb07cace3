import type {Socket} from 'node:net'

/** The part of node-zookeeper-client's connection manager that reads and writes its socket. */
export interface WireInternals {
  socket?: Socket
  onSocketData(chunk: Buffer): void
}

/**
 * What a snapshot of thousands of znodes costs in the library's I/O, cut without changing what it sends or reads.
 *
 * Reads: the library takes one frame off a chunk and then copies the rest of the chunk again (Buffer.concat with an
 * empty buffer) for the next frame, so a 64 KiB chunk of a few hundred answers is copied a few hundred times. It is
 * handed one whole frame at a time instead, and a frame that spans chunks is joined once, when it is complete.
 * Must be called before the library opens its first socket: it binds its data listener at connect time.
 */
export function readWholeFrames(cm: WireInternals): void {
  if (typeof cm.onSocketData !== 'function') return
  const deliver = cm.onSocketData.bind(cm)
  let socket: Socket | undefined
  let parts: Buffer[] = []
  let held = 0
  /** The length of the frame being gathered, once its prefix has come. */
  let need = 0
  cm.onSocketData = (chunk: Buffer): void => {
    // a new connection starts a new stream of frames
    if (cm.socket !== socket) {
      socket = cm.socket
      parts = []
      held = 0
      need = 0
    }

    if (chunk.length === 0) return
    parts.push(chunk)
    held += chunk.length
    if (held < 4 || held < need) return
    const buffer = parts.length === 1 ? parts[0]! : Buffer.concat(parts, held)
    parts = []
    held = 0
    need = 0
    let offset = 0
    while (buffer.length - offset >= 4) {
      const end = offset + 4 + buffer.readInt32BE(offset)
      if (end > buffer.length) {
        need = end - offset
        break
      }

      deliver(buffer.subarray(offset, end))
      offset = end
      // an answer that closed the connection ends its stream
      if (cm.socket !== socket) return
    }

    if (offset < buffer.length) {
      parts = [buffer.subarray(offset)]
      held = buffer.length - offset
    }
  }
}

/**
 * Writes: the library writes each request to the socket by itself, one system call each. The requests made in one
 * turn of the event loop (a pipeline's burst, the next requests its answers start) go out in one write: the socket
 * is corked for the rest of the turn.
 */
export function batchWrites(cm: WireInternals, corked: WeakSet<Socket>): void {
  const socket = cm.socket
  if (!socket || socket.destroyed || corked.has(socket)) return
  corked.add(socket)
  socket.cork()
  process.nextTick(() => {
    corked.delete(socket)
    socket.uncork()
  })
}
