import {networkInterfaces} from 'node:os'

import {UserError} from './errors.js'

/**
 * The address `svc register` advertises when none is given: loopback for the local backend (same machine),
 * else this host's first non-internal IPv4 address, as registrator's -ip defaults to the host's.
 */
export function defaultAddress(local: boolean): string {
  if (local) return '127.0.0.1'
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) {
      if (a.family === 'IPv4' && !a.internal) return a.address
    }
  }

  return '127.0.0.1'
}

export function checkUrl(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('not http')
    return parsed.toString()
  } catch {
    throw new UserError(`invalid --check-http "${url}"`, 'give a path such as /health or an http:// URL')
  }
}
