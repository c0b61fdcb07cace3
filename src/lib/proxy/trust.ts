import {BlockList, isIP} from 'node:net'

import {UserError} from '../errors.js'

/**
 * `--trusted-proxy` values (addresses or CIDR blocks, IPv4 or IPv6) as a test of a client address; an IPv4 client
 * seen as an IPv4-mapped IPv6 address (::ffff:a.b.c.d) matches IPv4 blocks.
 */
export function parseTrustedProxies(values: readonly string[]): ((ip: string) => boolean) | undefined {
  if (values.length === 0) return undefined
  const list = new BlockList()
  for (const value of values) {
    for (const item of value.split(',')) {
      const text = item.trim()
      if (text === '') continue
      const [address = '', bits, extra] = text.split('/')
      const family = isIP(address)
      const prefix = bits === undefined ? (family === 6 ? 128 : 32) : Number(bits)
      if (
        family === 0 ||
        extra !== undefined ||
        !Number.isInteger(prefix) ||
        prefix < 0 ||
        prefix > (family === 6 ? 128 : 32)
      ) {
        throw new UserError(
          `invalid trusted proxy "${text}"`,
          'give an address or a CIDR block, e.g. 10.0.0.0/8 or 127.0.0.1 or fd00::/8',
        )
      }

      list.addSubnet(address, prefix, family === 6 ? 'ipv6' : 'ipv4')
    }
  }

  return (ip) => {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)
    if (mapped) return list.check(mapped[1]!, 'ipv4')
    const family = isIP(ip)
    return family !== 0 && list.check(ip, family === 6 ? 'ipv6' : 'ipv4')
  }
}
