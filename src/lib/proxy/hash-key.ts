import type {IncomingMessage} from 'node:http'

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

/** The request's hash key, or undefined when the header or cookie is missing. */
export function hashKeyOf(key: HashKey, req: IncomingMessage): string | undefined {
  switch (key.kind) {
    case 'ip': {
      return req.socket.remoteAddress
    }

    case 'header': {
      const value = req.headers[key.name]
      return Array.isArray(value) ? value[0] : value
    }

    case 'cookie': {
      return cookieValue(req.headers.cookie, key.name)
    }
  }
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
