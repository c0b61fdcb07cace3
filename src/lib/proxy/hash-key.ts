import {UserError} from '../errors.js'

/** What the hash strategy hashes: a request header, a cookie, or the client's IP address. */
export type HashKey = {kind: 'header'; name: string} | {kind: 'cookie'; name: string} | {kind: 'ip'}

const HINT = 'use header:NAME, cookie:NAME or ip, e.g. --hash-key header:x-user-id'

export function parseHashKey(text: string): HashKey {
  const value = text.trim()
  if (value === 'ip') return {kind: 'ip'}
  const match = /^(header|cookie):([!#$%&'*+.^`|~\w-]+)$/.exec(value)
  if (!match) throw new UserError(`invalid --hash-key "${text}"`, HINT)
  const name = match[2]!
  return match[1] === 'header' ? {kind: 'header', name: name.toLowerCase()} : {kind: 'cookie', name}
}

/**
 * The request's hash key from its raw [name, value, ...] headers and the client's address, or undefined when the
 * header or cookie is missing. Several Cookie headers count as one.
 */
export function hashKeyOf(key: HashKey, raw: readonly string[], remoteAddress: string | undefined): string | undefined {
  if (key.kind === 'ip') return remoteAddress
  const wanted = key.kind === 'header' ? key.name : 'cookie'
  let cookies: string | undefined
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    if (name.length !== wanted.length || name.toLowerCase() !== wanted) continue
    if (key.kind === 'header') return raw[i + 1]
    cookies = cookies === undefined ? raw[i + 1] : `${cookies}; ${raw[i + 1]}`
  }

  return key.kind === 'cookie' ? cookieValue(cookies, key.name) : undefined
}

/** The value of cookie `name` in a Cookie header, or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }

  return undefined
}
