/**
 * One demo service instance, run as its own process by `svc demo`: a tiny HTTP server that answers with its id,
 * registered on the demo's registry the way `svc register` does it (heartbeats; deregistered on SIGTERM).
 * Talks to its parent over IPC; when the parent goes away it shuts down too.
 */
import {createServer} from 'node:http'
import type {AddressInfo} from 'node:net'
import {setTimeout as sleep} from 'node:timers/promises'
import {parseArgs} from 'node:util'

import {errorMessage} from '../errors.js'
import {runRegistration} from '../register.js'
import {openRegistry} from '../registry/index.js'
import type {ServiceInstance} from '../registry/types.js'

/** Messages an instance sends its parent. */
export type InstanceMessage =
  | {type: 'registered'; instance: ServiceInstance; pid: number}
  | {type: 'deregistered'; at: number}
  | {type: 'log'; line: string}
  | {type: 'failed'; error: string}

const {values} = parseArgs({
  options: {
    registry: {type: 'string'},
    service: {type: 'string'},
    id: {type: 'string'},
    grace: {type: 'string', default: '250'},
  },
})

function send(message: InstanceMessage): void {
  process.send?.(message)
}

async function main(): Promise<void> {
  const {registry: dir, service, id} = values
  if (!dir || !service || !id) throw new Error('usage: instance.js --registry DIR --service NAME --id ID [--grace MS]')
  const graceMs = Number(values.grace)
  const server = createServer((req, res) => {
    req.resume()
    res.setHeader('x-svc-instance', id)
    res.setHeader('content-type', 'text/plain')
    res.end(`${id}\n`)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const {port} = server.address() as AddressInfo

  const registry = await openRegistry({kind: 'local', dir}, {log: (line) => send({type: 'log', line})})
  const controller = new AbortController()
  const registration = runRegistration({
    registry,
    input: {service, id, address: '127.0.0.1', port, meta: {pid: String(process.pid)}},
    signal: controller.signal,
    log: (line) => send({type: 'log', line}),
    onRegistered: (instance) => send({type: 'registered', instance, pid: process.pid}),
  })

  let stopping = false
  const stop = async (): Promise<void> => {
    if (stopping) return
    stopping = true
    // deregister first, keep serving while watchers (the proxy) catch up, then stop: nobody is sent here after
    controller.abort()
    await registration
    send({type: 'deregistered', at: Date.now()})
    await sleep(graceMs)
    const closed = new Promise<void>((resolve) => {
      server.close(() => resolve())
    })
    server.closeIdleConnections()
    await Promise.race([closed, sleep(2000)])
    server.closeAllConnections()
    await registry.close()
    process.exit(0)
  }

  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  process.on('SIGHUP', stop)
  process.on('disconnect', stop)
  // a registration that fails ends the instance: the parent sees the exit
  await registration.catch((error: unknown) => {
    send({type: 'failed', error: errorMessage(error)})
    process.exit(1)
  })
}

try {
  await main()
} catch (error) {
  send({type: 'failed', error: errorMessage(error)})
  process.exitCode = 1
  process.disconnect?.()
}
