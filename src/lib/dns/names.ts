import {isIP} from 'node:net'

/** What a query name asks for, in Consul's names under the served domain. */
export type QueryName =
  | {kind: 'service'; service: string; tag?: string}
  /** `<service>` and an optional `<tag>` before `.service.<domain>`, to be told apart by what the zone holds. */
  | {kind: 'service-or-tag'; labels: string[]}
  | {kind: 'addr'; address: string}
  | {kind: 'apex'}
  | {kind: 'unknown'}
  | {kind: 'outside'}

/** The served domain in canonical form: lower case, no leading or trailing dot (`consul`). */
export function normaliseDomain(domain: string): string {
  return domain
    .trim()
    .toLowerCase()
    .replaceAll(/^\.+|\.+$/g, '')
}

/**
 * Parses a query name against the domain: `[tag.]<service>.service[.<datacenter>].<domain>`,
 * `_<service>._<tag>.service[.<datacenter>].<domain>`, `<hex>.addr[.<datacenter>].<domain>`.
 */
export function parseQueryName(name: string, domain: string, datacenter: string): QueryName {
  const lower = name.toLowerCase().replace(/\.+$/, '')
  if (lower === domain) return {kind: 'apex'}
  if (!lower.endsWith(`.${domain}`)) return {kind: 'outside'}
  const labels = lower.slice(0, -(domain.length + 1)).split('.')
  // Consul's names may carry the datacenter before the domain; svc serves one, named by --datacenter
  const kinds = new Set(['addr', 'service'])
  if (labels.length >= 3 && labels.at(-1) === datacenter && kinds.has(labels.at(-2)!)) labels.pop()
  const kind = labels.at(-1)
  const rest = labels.slice(0, -1)
  if (kind === 'addr' && rest.length === 1) {
    const address = addressOfHex(rest[0]!)
    return address === undefined ? {kind: 'unknown'} : {kind: 'addr', address}
  }

  if (kind !== 'service' || rest.length === 0 || rest.includes('')) return {kind: 'unknown'}
  // RFC 2782: _<service>._<protocol or tag>; Consul reads _tcp (and _udp) as "no tag"
  const [first, second] = rest
  if (rest.length === 2 && first!.startsWith('_') && second!.startsWith('_')) {
    const tag = second!.slice(1)
    return {kind: 'service', service: first!.slice(1), tag: tag === 'tcp' || tag === 'udp' ? undefined : tag}
  }

  return {kind: 'service-or-tag', labels: rest}
}

/** Consul's SRV target label for an address: 8 hex digits for IPv4, 32 for IPv6 (`7f000001`). */
export function hexOfAddress(address: string): string | undefined {
  if (isIP(address) === 4) {
    return address
      .split('.')
      .map((octet) => Number(octet).toString(16).padStart(2, '0'))
      .join('')
  }

  if (isIP(address) === 6) return expandIpv6(address)?.join('')
  return undefined
}

function addressOfHex(hex: string): string | undefined {
  if (/^[\da-f]{8}$/.test(hex)) {
    return [0, 2, 4, 6].map((i) => Number.parseInt(hex.slice(i, i + 2), 16)).join('.')
  }

  if (/^[\da-f]{32}$/.test(hex)) {
    const groups = Array.from({length: 8}, (_, i) => hex.slice(i * 4, i * 4 + 4).replace(/^0{1,3}/, ''))
    return compressIpv6(groups)
  }

  return undefined
}

/** Eight 4-digit groups of an IPv6 address (IPv4-mapped tails included). */
function expandIpv6(address: string): string[] | undefined {
  let text = address.toLowerCase().replaceAll(/^\[|\]$/g, '')
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (v4) {
    const hex = hexOfAddress(v4[1]!)
    if (hex === undefined) return undefined
    text = `${text.slice(0, -v4[1]!.length)}${hex.slice(0, 4)}:${hex.slice(4)}`
  }

  const [head, tail] = text.split('::') as [string, string | undefined]
  const left = head === '' ? [] : head.split(':')
  const right = tail === undefined || tail === '' ? [] : tail.split(':')
  const zeros = tail === undefined ? [] : Array.from({length: 8 - left.length - right.length}, () => '0')
  const groups = [...left, ...zeros, ...right]
  return groups.length === 8 ? groups.map((g) => g.padStart(4, '0')) : undefined
}

/** The address in the form registrations are compared in: Node's own formatting of the groups. */
function compressIpv6(groups: string[]): string {
  const url = new URL(`http://[${groups.map((g) => g || '0').join(':')}]/`)
  return url.hostname.replaceAll(/^\[|\]$/g, '')
}
