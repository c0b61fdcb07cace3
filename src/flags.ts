import * as Flags from '@oclif/core/flags'

import {durationText, parseDuration} from './lib/duration.js'
import {formatError, UserError} from './lib/errors.js'
import {parseBackend} from './lib/registry/spec.js'
import {parsePort} from './lib/registry/validate.js'
import {ZK_ACL_HELP} from './lib/registry/zk-acl.js'

/** Runs a lib validator inside an oclif flag parser, keeping its hint in the one-line message. */
function validated<T>(fn: (input: string) => T): (input: string) => Promise<T> {
  return async (input) => {
    try {
      return fn(input)
    } catch (error) {
      // a UserError: `svc config set` runs these parsers outside oclif's parse, and must exit 2 as well
      throw new UserError(formatError(error))
    }
  }
}

export const backendFlags = {
  backend: Flags.string({
    char: 'b',
    description:
      'registry: local (default), zk, consul, etcd, or a URI such as zk://h1:2181,h2:2181/services; ' +
      'zk://user:password@hosts and etcd://user:password@hosts carry credentials (percent-encoded), etcds:// is etcd over TLS',
    env: 'SVC_BACKEND',
    helpGroup: 'BACKEND',
    parse: validated(checkBackend),
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
  // no env on these: each backend reads its own variables (ETCDCTL_CACERT, CONSUL_CACERT, ...) in specFromFlags
  cacert: Flags.string({
    description: 'CA certificate (PEM) to trust for TLS (etcds://: ETCDCTL_CACERT; consul+https://: CONSUL_CACERT)',
    helpGroup: 'BACKEND',
  }),
  cert: Flags.string({
    description: 'client certificate (PEM) for TLS, with --key (ETCDCTL_CERT; CONSUL_CLIENT_CERT)',
    helpGroup: 'BACKEND',
  }),
  key: Flags.string({
    description: 'private key (PEM) of --cert (ETCDCTL_KEY; CONSUL_CLIENT_KEY)',
    helpGroup: 'BACKEND',
  }),
  'zk-auth': Flags.string({
    description:
      'ZooKeeper digest credentials user:password, sent on every session (a command line is visible to ps: prefer SVC_ZK_AUTH)',
    env: 'SVC_ZK_AUTH',
    helpGroup: 'BACKEND',
  }),
  'zk-acl': Flags.string({
    description: `ACL of the znodes svc creates: ${ZK_ACL_HELP}`,
    env: 'SVC_ZK_ACL',
    helpGroup: 'BACKEND',
  }),
}

export const portFlag = Flags.custom<number>({parse: validated((input) => parsePort(input))})

/** Every duration flag: 500ms, 10s, 1m or 1h; a bare number is refused (see parseDuration). */
export const durationFlag = Flags.custom<number>({
  helpValue: '<duration>',
  parse: validated((input) => parseDuration(input)),
})

/** A duration flag's default, shown in --help as the text that parses back to it (5s, not 5000). */
export function durationDefault(ms: number): {default: number; defaultHelp: () => Promise<string>} {
  return {default: ms, defaultHelp: async () => durationText(ms)}
}

/** The backend value's syntax (the environment's addresses are read later, where the spec is built). */
function checkBackend(input: string): string {
  if (input.trim() === '') {
    throw new UserError('--backend is empty', 'name a backend: local, zk, consul, etcd, or a URI such as zk://h:2181')
  }

  parseBackend(input, {})
  return input
}

export {validated}
