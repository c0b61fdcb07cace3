import * as Flags from '@oclif/core/flags'

import {parseDuration} from './lib/duration.js'
import {formatError} from './lib/errors.js'
import {parsePort} from './lib/registry/validate.js'

/** Runs a lib validator inside an oclif flag parser, keeping its hint in the one-line message. */
function validated<T>(fn: (input: string) => T): (input: string) => Promise<T> {
  return async (input) => {
    try {
      return fn(input)
    } catch (error) {
      throw new Error(formatError(error))
    }
  }
}

export const backendFlags = {
  backend: Flags.string({
    char: 'b',
    description: 'registry: local (default), zk, consul, etcd, or a URI such as zk://h1:2181,h2:2181/services',
    env: 'SVC_BACKEND',
    helpGroup: 'BACKEND',
  }),
  token: Flags.string({
    description: 'Consul ACL token (else CONSUL_HTTP_TOKEN_FILE names a file that holds it)',
    env: 'CONSUL_HTTP_TOKEN',
    helpGroup: 'BACKEND',
  }),
  profile: Flags.string({
    description: 'backend settings saved with `svc config set --profile NAME` (default: the default-profile setting)',
    env: 'SVC_PROFILE',
    helpGroup: 'BACKEND',
  }),
  cacert: Flags.string({
    description: 'CA certificate file for TLS to the backend (Consul: CONSUL_CACERT)',
    helpGroup: 'BACKEND',
  }),
  cert: Flags.string({
    description: 'client certificate file for TLS (Consul: CONSUL_CLIENT_CERT)',
    helpGroup: 'BACKEND',
  }),
  key: Flags.string({description: 'client key file for TLS (Consul: CONSUL_CLIENT_KEY)', helpGroup: 'BACKEND'}),
}

export const portFlag = Flags.custom<number>({parse: validated((input) => parsePort(input))})

export const durationFlag = Flags.custom<number>({
  parse: validated((input) => parseDuration(input)),
})

export {validated}
