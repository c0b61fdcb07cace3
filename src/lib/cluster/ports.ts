import net from 'node:net'

import {UserError} from '../errors.js'
import {CLUSTER_HOST} from './types.js'

/** Ports this process handed out already: the kernel may offer a released port again, so it is never reused here. */
const handedOut = new Set<number>()

function listen(port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.once('error', reject)
    server.listen({host: CLUSTER_HOST, port, exclusive: true}, () => {
      server.off('error', reject)
      resolve(server)
    })
  })
}

function close(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve())
  })
}

function portOf(server: net.Server): number {
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('listening socket has no port')
  return address.port
}

/**
 * `count` distinct free ports on 127.0.0.1. Every port stays bound until all are found, so the kernel cannot
 * hand out one twice; none is returned twice within this process.
 */
export async function allocatePorts(count: number): Promise<number[]> {
  const held: net.Server[] = []
  const ports: number[] = []
  try {
    let attempts = 0
    while (ports.length < count) {
      if (++attempts > count * 20)
        throw new Error(`found only ${ports.length} of ${count} free ports on ${CLUSTER_HOST}`)
      const server = await listen(0)
      held.push(server)
      const port = portOf(server)
      if (!handedOut.has(port)) ports.push(port)
    }
  } finally {
    await Promise.all(held.map((s) => close(s)))
  }

  for (const port of ports) handedOut.add(port)
  return ports
}

/** Checks that `count` consecutive ports from `basePort` are free and reserves them within this process. */
export async function reservePortRange(basePort: number, count: number): Promise<number[]> {
  if (!Number.isInteger(basePort) || basePort < 1024 || basePort + count - 1 > 65_535) {
    throw new UserError(`invalid base port ${basePort}`, `use a port from 1024 to ${65_535 - count + 1}`)
  }

  const ports = Array.from({length: count}, (_, i) => basePort + i)
  const held: net.Server[] = []
  try {
    for (const port of ports) {
      if (handedOut.has(port))
        throw new UserError(`port ${port} is already used by another cluster`, 'choose another base port')
      try {
        held.push(await listen(port))
      } catch (error) {
        throw new UserError(
          `port ${port} on ${CLUSTER_HOST} is in use (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
          `ports ${basePort}-${basePort + count - 1} must be free: choose another base port, or omit it to use free ports`,
        )
      }
    }
  } finally {
    await Promise.all(held.map((s) => close(s)))
  }

  for (const port of ports) handedOut.add(port)
  return ports
}

/** Lets this process hand out ports again (after their cluster stopped). */
export function releasePorts(ports: Iterable<number>): void {
  for (const port of ports) handedOut.delete(port)
}
