import {readFileSync} from 'node:fs'

import {UserError} from '../../errors.js'
import type {TlsFiles} from '../spec.js'

/** One ACL rule a Consul request needs: `service:write on "web"`. */
export interface Permission {
  resource: 'agent' | 'key' | 'node' | 'operator' | 'service'
  access: 'read' | 'write'
  /** The rule's subject (service name, node name, key); undefined: any (a `_prefix ""` rule). */
  name?: string
}

const SERVICE_WRITE = /^\/agent\/(?:service\/(?:register|deregister|maintenance)|check\/(?:pass|warn|fail|update))\b/
const SERVICE_READ_NAMED = /^\/(?:health\/(?:service|checks|connect)|catalog\/(?:service|connect))\/([^/?]+)/
const NODE_READ = /^\/(?:catalog\/(?:nodes|node)|health\/(?:node|state))\b/

/**
 * The permission a Consul 1.8 API request needs, from its method and path (`/v1/...`); `service` names the
 * service when the path carries only an instance id (agent registration endpoints).
 */
export function requiredPermission(method: string, rawPath: string, service?: string): Permission | undefined {
  const apiPath = rawPath.replace(/[?#].*$/, '').replace(/^\/v1(?=\/)/, '')
  const named = (name: string | undefined): {name?: string} => (name === undefined ? {} : {name})
  if (SERVICE_WRITE.test(apiPath)) return {resource: 'service', access: 'write', ...named(service)}
  // removing one service from the catalog needs service:write on it; registering through the catalog, node:write
  if (apiPath === '/catalog/deregister') return {resource: 'service', access: 'write', ...named(service)}
  if (apiPath === '/catalog/register') return {resource: 'node', access: 'write'}
  const read = SERVICE_READ_NAMED.exec(apiPath)
  if (read) return {resource: 'service', access: 'read', name: decodeURIComponent(read[1]!)}
  if (/^\/(?:agent\/services?|catalog\/services)\b/.test(apiPath))
    return {resource: 'service', access: 'read', ...named(service)}
  if (NODE_READ.test(apiPath)) return {resource: 'node', access: 'read'}
  if (/^\/agent\/(?:self|members|metrics|host|monitor)\b/.test(apiPath)) return {resource: 'agent', access: 'read'}
  if (apiPath.startsWith('/operator/')) return {resource: 'operator', access: method === 'GET' ? 'read' : 'write'}
  const key = /^\/kv\/(.*)$/.exec(apiPath)
  if (key) return {resource: 'key', access: method === 'GET' ? 'read' : 'write', name: decodeURIComponent(key[1]!)}
  return undefined
}

/** `service:write on "web"` */
export function describePermission(p: Permission): string {
  return `${p.resource}:${p.access}${p.name === undefined ? '' : ` on "${p.name}"`}`
}

/** The policy rule (HCL) that grants the permission. */
export function policyRule(p: Permission): string {
  if (p.resource === 'operator') return `operator = "${p.access}"`
  const subject = p.name === undefined ? `${p.resource}_prefix ""` : `${p.resource} "${p.name}"`
  return `${subject} { policy = "${p.access}" }`
}

/** The one-line message and hint for a 403 from Consul. */
export function deniedMessage(
  body: string,
  permission: Permission | undefined,
  hasToken: boolean,
): {message: string; hint: string} {
  if (hasToken && /acl not found/i.test(body)) {
    return {
      message: 'Consul does not know the ACL token (ACL not found)',
      hint: "pass a token's SecretID that exists in this datacenter (--token, CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE)",
    }
  }

  const need = permission ? ` (${describePermission(permission)})` : ''
  const rule = permission ? `a token whose policy grants ${policyRule(permission)}` : 'a token with the needed rights'
  return hasToken
    ? {
        message: `Consul refused the token: permission denied${need}`,
        hint: `use ${rule} (--token or CONSUL_HTTP_TOKEN)`,
      }
    : {
        message: `Consul refused the request: permission denied${need}, and svc sent no ACL token`,
        hint: `the agent enforces ACLs: pass ${rule} with --token, CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE`,
      }
}

/** Removes the token, and any `token=` query parameter, from text that leaves svc (driver messages, bodies). */
export function redactSecrets(text: string, secrets: ReadonlyArray<string | undefined>): string {
  let out = text.replaceAll(/([?&](?:token|access_token)=)[^&\s"']*/gi, '$1REDACTED')
  for (const secret of secrets) if (secret && secret.length >= 4) out = out.replaceAll(secret, 'REDACTED')
  return out
}

const TLS_CODES = new Set([
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
])

/** A TLS failure as one line and a fix; undefined when the error is not about TLS. */
export function tlsProblem(code: string | undefined, message: string): {detail: string; hint: string} | undefined {
  if (code && TLS_CODES.has(code)) {
    return {
      detail: `the agent's certificate is not trusted (${code})`,
      hint: code.includes('ALTNAME')
        ? 'reach the agent by a name or IP its certificate lists (subjectAltName)'
        : "pass the CA that signed the agent's certificate: --cacert or CONSUL_CACERT",
    }
  }

  if (
    /ALERT_(?:BAD_CERTIFICATE|CERTIFICATE_REQUIRED|UNKNOWN_CA|HANDSHAKE_FAILURE)/.test(code ?? '') ||
    /alert (?:certificate required|bad certificate|unknown ca)/i.test(message)
  ) {
    return {
      detail: 'the agent rejected the TLS handshake (client certificate required or refused)',
      hint: 'pass a client certificate the agent trusts: --cert and --key (or CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY)',
    }
  }

  if (/WRONG_VERSION_NUMBER/.test(code ?? '') || /wrong version number|packet length too long/i.test(message)) {
    return {
      detail: 'the agent does not speak HTTPS on that port',
      hint: "use consul:// for a plain-HTTP port, or the agent's HTTPS port with consul+https://",
    }
  }

  if (code === 'EPROTO' || code?.startsWith('ERR_SSL') || code?.startsWith('ERR_TLS')) {
    return {
      detail: `the TLS handshake failed (${code})`,
      hint: "check --cacert, --cert and --key (or CONSUL_CACERT, CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY) against the agent's TLS settings",
    }
  }

  return undefined
}

/** Reads the TLS files once; a missing one is a one-line error that names it. */
export function readTlsFiles(files: TlsFiles): {ca?: Buffer; cert?: Buffer; key?: Buffer} {
  const out: {ca?: Buffer; cert?: Buffer; key?: Buffer} = {}
  const names = {ca: '--cacert (CONSUL_CACERT)', cert: '--cert (CONSUL_CLIENT_CERT)', key: '--key (CONSUL_CLIENT_KEY)'}
  for (const field of ['ca', 'cert', 'key'] as const) {
    const file = files[field]
    if (file === undefined) continue
    try {
      out[field] = readFileSync(file)
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unreadable'
      throw new UserError(
        `cannot read the TLS file ${file} given by ${names[field]} (${code})`,
        'name a readable PEM file',
      )
    }
  }

  return out
}
