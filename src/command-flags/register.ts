import type {Interfaces} from '@oclif/core'
import * as Flags from '@oclif/core/flags'

import {durationDefault, durationFlag, portFlag} from '../flags.js'
import type {RegisterRequest} from '../lib/register-plan.js'

/** `svc register`'s flags. */
export const registerFlags = {
  port: portFlag({char: 'p', description: 'port the instance listens on', required: true}),
  address: Flags.string({
    char: 'a',
    description:
      "address to advertise [default: 127.0.0.1 on the local backend, else this host's first non-loopback IPv4]",
  }),
  id: Flags.string({description: 'instance id [default: <name>:<address>:<port>]'}),
  tag: Flags.string({char: 't', description: 'tag (repeatable)', multiple: true}),
  meta: Flags.string({
    char: 'm',
    description: 'metadata KEY=VALUE (repeatable); weight=N (N >= 0) steers the balancers',
    multiple: true,
  }),
  'check-http': Flags.string({description: 'HTTP health check: a path on the instance (/health) or a full URL'}),
  'check-tcp': Flags.boolean({description: 'TCP health check: connect to address:port', exclusive: ['check-http']}),
  'check-interval': durationFlag({description: 'how often the check runs', ...durationDefault(10_000)}),
  'check-timeout': durationFlag({description: 'check timeout', ...durationDefault(5000)}),
  ttl: durationFlag({
    description:
      'how long the instance outlives its last heartbeat, at least 1s [default: local 15s, etcd 10s, zk 10s, consul 10s]',
  }),
  'dry-run': Flags.boolean({description: 'validate and print the instance, but do not register it'}),
}

/** What the flags ask `svc register` to register. */
export function registerRequest(
  service: string,
  flags: Interfaces.InferredFlags<typeof registerFlags>,
  local: boolean,
): RegisterRequest {
  return {
    service,
    port: flags.port,
    address: flags.address,
    id: flags.id,
    tags: flags.tag,
    meta: flags.meta,
    checkHttp: flags['check-http'],
    checkTcp: flags['check-tcp'],
    checkIntervalMs: flags['check-interval'],
    checkTimeoutMs: flags['check-timeout'],
    local,
  }
}
