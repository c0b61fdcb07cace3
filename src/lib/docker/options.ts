import {UserError} from '../errors.js'
import {validateTag} from '../registry/validate.js'
import type {AgentOptions} from './types.js'

/** `svc agent`'s flags as parsed, before they are checked against each other. */
export interface AgentFlagValues {
  hostname: string
  ip?: string
  internal: boolean
  explicit: boolean
  tags?: string
  network?: string
  resync?: number
  cleanup: boolean
  deregister: string
  ttl?: number
  'ttl-refresh'?: number
  'retry-attempts': number
  'retry-interval': number
}

/** The agent's options from its flags, with the rules that tie flags together checked. */
export function agentOptions(flags: AgentFlagValues): AgentOptions {
  if (flags['ttl-refresh'] !== undefined && flags.ttl === undefined) {
    throw new UserError('--ttl-refresh needs --ttl', 'give the TTL it refreshes, e.g. --ttl 30s --ttl-refresh 10s')
  }

  if (flags.ttl !== undefined && flags['ttl-refresh'] !== undefined && flags['ttl-refresh'] >= flags.ttl) {
    throw new UserError(
      '--ttl-refresh must be below --ttl',
      'refresh at a third of the TTL, e.g. --ttl 30s --ttl-refresh 10s',
    )
  }

  if (flags['retry-attempts'] < -1) {
    throw new UserError('--retry-attempts must be -1 (forever) or more', 'use -1, 0 or a positive count')
  }

  const tags = (flags.tags ?? '')
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '')
    .map((t) => validateTag(t))
  return {
    hostname: flags.hostname,
    ip: flags.ip,
    internal: flags.internal,
    explicit: flags.explicit,
    tags,
    network: flags.network,
    resyncMs: flags.resync,
    cleanup: flags.cleanup,
    deregister: flags.deregister === 'on-success' ? 'on-success' : 'always',
    ttlMs: flags.ttl,
    ttlRefreshMs: flags['ttl-refresh'],
    retryAttempts: flags['retry-attempts'],
    retryIntervalMs: flags['retry-interval'],
  }
}
