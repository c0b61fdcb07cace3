import {homedir} from 'node:os'
import path from 'node:path'

import {UserError} from '../errors.js'
import type {BackendKind} from './types.js'
import {parseZkAcl, type ZkAclSpec} from './zk-acl.js'
import {
  consulToken,
  DEFAULT_PORTS,
  type Env,
  normalizeBase,
  type RemoteKind,
  splitUri,
  uriAddresses,
  usesHttps,
} from './backend-uri.js'

export type {ZkAclEntry, ZkAclSpec} from './zk-acl.js'
export type {Env} from './backend-uri.js'

export interface HostPort {
  host: string
  port: number
}

/** PEM file paths: a CA to trust, and a client certificate with its key. */
export interface TlsFiles {
  ca?: string
  cert?: string
  key?: string
}

export interface Credentials {
  user: string
  password: string
}

export type BackendSpec = {
  /** Where the address came from (--backend, SVC_BACKEND, CONSUL_HTTP_ADDR, a profile), for the hints of errors. */
  origin?: string
} & (
  | {kind: 'local'; dir: string}
  | {kind: 'zk'; hosts: HostPort[]; base: string; auth?: Credentials; acl?: ZkAclSpec}
  | {kind: 'consul'; hosts: HostPort[]; token?: string; https?: boolean; tls?: TlsFiles}
  | {kind: 'etcd'; hosts: HostPort[]; prefix: string; auth?: Credentials; tls?: TlsFiles}
)

const SCHEMES: Record<string, BackendKind> = {
  local: 'local',
  zk: 'zk',
  zookeeper: 'zk',
  consul: 'consul',
  'consul+https': 'consul',
  etcd: 'etcd',
  etcds: 'etcd',
}

const USAGE_HINT = 'use local, zk, consul or etcd, or a URI such as zk://127.0.0.1:2181/services'

/** svc's state directory: $SVC_HOME, else ${XDG_STATE_HOME:-~/.local/state}/svc. */
export function svcHome(env: Env = process.env): string {
  // resolved: processes started in other directories must find the same registry, and messages show where it is
  if (env.SVC_HOME) return path.resolve(env.SVC_HOME)
  const state = env.XDG_STATE_HOME || path.join(homedir(), '.local', 'state')
  return path.join(state, 'svc')
}

/** The embedded registry's directory: $SVC_HOME/registry, else the XDG state directory. */
export function defaultLocalDir(env: Env = process.env): string {
  return path.join(svcHome(env), 'registry')
}

/** Parses `--backend` / SVC_BACKEND: a bare name or a URI with `user:password@` and comma-separated addresses. */
export function parseBackend(value: string | undefined, env: Env = process.env): BackendSpec {
  const raw = (value ?? '').trim() || 'local'
  const match = /^([a-z][a-z0-9+.-]*)(?::\/\/(.*))?$/is.exec(raw)
  const scheme = match?.[1]!.toLowerCase()
  // own keys only: "constructor" or "__proto__" is no backend
  const kind = scheme !== undefined && Object.hasOwn(SCHEMES, scheme) ? SCHEMES[scheme] : undefined
  // every message quotes the value without its password
  const shown = redactUri(raw)
  if (!match || !kind) {
    throw new UserError(
      `unknown backend "${shown.includes('://') ? shown.slice(0, shown.indexOf('://')) : shown}"`,
      USAGE_HINT,
    )
  }

  const rest = match[2]
  if (kind === 'local') {
    if (rest === undefined || rest === '') return {kind, dir: defaultLocalDir(env)}
    return {kind, dir: path.resolve(rest)}
  }

  const uri = splitUri(rest)
  const uriAuth =
    uri.userinfo === undefined ? undefined : parseCredentials(uri.userinfo, `the user info of backend "${shown}"`)
  const {hostsPart, origin, httpsFromEnv} = uriAddresses(kind, uri.hostsPart, env)
  const hosts = parseHosts(hostsPart, DEFAULT_PORTS[kind], shown)
  const tls = scheme === 'etcds' || httpsFromEnv
  return remoteSpec(kind, {scheme: scheme!, hosts, hostsPart, pathPart: uri.pathPart, uriAuth, tls, origin, shown}, env)
}

/** What parseBackend read from a zk, etcd or consul URI and its variables, before the kind's own rules. */
interface RemoteParts {
  scheme: string
  hosts: HostPort[]
  hostsPart: string
  pathPart: string
  uriAuth: Credentials | undefined
  tls: boolean
  origin: {origin: string} | undefined
  /** The value as messages show it, without its password. */
  shown: string
}

function remoteSpec(kind: RemoteKind, parts: RemoteParts, env: Env): BackendSpec {
  const {scheme, hosts, hostsPart, pathPart, uriAuth, tls, origin, shown} = parts
  switch (kind) {
    case 'zk': {
      const spec: BackendSpec = {kind, hosts, base: normalizeBase(pathPart, '/services', shown), ...origin}
      return uriAuth ? {...spec, auth: uriAuth} : spec
    }

    case 'etcd': {
      const spec: BackendSpec = {kind, hosts, prefix: normalizeBase(pathPart, '/services', shown), ...origin}
      // etcdctl's ETCDCTL_USER fills in only what the URI leaves out
      const auth = uriAuth ?? (env.ETCDCTL_USER ? parseCredentials(env.ETCDCTL_USER, 'ETCDCTL_USER', false) : undefined)
      return {...spec, ...(auth && {auth}), ...(tls && {tls: {}})}
    }

    case 'consul': {
      if (pathPart && pathPart !== '/') {
        throw new UserError(
          `consul URI "${shown}" has a path`,
          'Consul URIs name only agents: consul://host:8500[,host2:8500]',
        )
      }

      return {...consulSpec(hosts, scheme === 'consul+https' || usesHttps(hostsPart, env), env), ...origin}
    }
  }
}

/** The backend flags (each already merged with its environment variable by oclif; `env` fills in otherwise). */
export interface BackendFlagValues {
  backend?: string
  token?: string
  cacert?: string
  cert?: string
  key?: string
  'zk-auth'?: string
  'zk-acl'?: string
}

/**
 * The spec the backend flags name: flag, else its environment variable, else what the URI says. `origin` names
 * where the backend value came from; a variable that supplied the addresses (CONSUL_HTTP_ADDR, ...) wins over it.
 */
export function specFromFlags(flags: BackendFlagValues, env: Env = process.env, origin?: string): BackendSpec {
  const spec = specFromValues(flags, env)
  const named = spec.origin ?? origin
  return named === undefined ? spec : {...spec, origin: named}
}

function specFromValues(flags: BackendFlagValues, env: Env): BackendSpec {
  // Consul's settings are read from its variables by parseBackend: the flags stand in for them
  const consul: Env = {
    CONSUL_HTTP_TOKEN: flags.token,
    CONSUL_CACERT: flags.cacert,
    CONSUL_CLIENT_CERT: flags.cert,
    CONSUL_CLIENT_KEY: flags.key,
  }
  const merged: Env = {...env}
  for (const [name, value] of Object.entries(consul)) if (value) merged[name] = value
  const spec = parseBackend(flags.backend ?? env.SVC_BACKEND, merged)
  const tlsFlags = Boolean(flags.cacert || flags.cert || flags.key)
  if (spec.kind === 'zk') return zkFromFlags(spec, flags, env)
  if (spec.kind === 'etcd') return etcdFromFlags(spec, flags, env, tlsFlags)
  if (spec.kind === 'consul' && !spec.https && tlsFlags) {
    throw new UserError(
      `--cacert, --cert or --key is given but ${describeBackend(spec)} is plain HTTP`,
      'use consul+https://host:8501 (or CONSUL_HTTP_SSL=true) for TLS, or leave them out',
    )
  }

  return spec
}

type SpecOf<K extends BackendSpec['kind']> = Extract<BackendSpec, {kind: K}>

/** --zk-auth and --zk-acl (or their variables) over what the URI says. */
function zkFromFlags(spec: SpecOf<'zk'>, flags: BackendFlagValues, env: Env): BackendSpec {
  const authText = flags['zk-auth'] ?? env.SVC_ZK_AUTH
  const auth = authText ? parseCredentials(authText, '--zk-auth (SVC_ZK_AUTH)', false) : spec.auth
  const aclText = flags['zk-acl'] ?? env.SVC_ZK_ACL
  const acl = aclText ? parseZkAcl(aclText, auth !== undefined) : spec.acl
  return {...spec, ...(auth && {auth}), ...(acl && {acl})}
}

/** The TLS files of an etcds:// backend: flags, else ETCDCTL_* variables; refused for a plain URI. */
function etcdFromFlags(spec: SpecOf<'etcd'>, flags: BackendFlagValues, env: Env, tlsFlags: boolean): BackendSpec {
  // flags for a plain URI are a mistake; exported ETCDCTL_* variables apply only where TLS is used, as in etcdctl
  if (!spec.tls) {
    if (tlsFlags) {
      throw new UserError(
        `--cacert, --cert or --key is given but ${describeBackend(spec)} is plain`,
        'use etcds://host:2379 for TLS, or leave them out',
      )
    }

    return spec
  }

  const files: TlsFiles = {
    ...spec.tls,
    ...definedFile('ca', flags.cacert ?? env.ETCDCTL_CACERT),
    ...definedFile('cert', flags.cert ?? env.ETCDCTL_CERT),
    ...definedFile('key', flags.key ?? env.ETCDCTL_KEY),
  }
  const given = Object.keys(files).length > 0

  if (Boolean(files.cert) !== Boolean(files.key)) {
    throw new UserError('a client certificate needs both --cert and --key', 'pass both (ETCDCTL_CERT, ETCDCTL_KEY)')
  }

  return given ? {...spec, tls: files} : spec
}

function definedFile(name: keyof TlsFiles, file: string | undefined): TlsFiles {
  return file ? {[name]: file} : {}
}

/**
 * `user:password`, percent-decoded when it comes from a URI. Error messages name `where`, never the text: it
 * holds a password.
 */
function parseCredentials(text: string, where: string, percentEncoded = true): Credentials {
  const colon = text.indexOf(':')
  const decode = (part: string): string => {
    if (!percentEncoded) return part
    try {
      return decodeURIComponent(part)
    } catch {
      throw new UserError(`${where} has a bad percent-encoding`, 'write a reserved character as %XX, e.g. @ as %40')
    }
  }

  const user = decode(colon === -1 ? text : text.slice(0, colon))
  if (colon === -1 || user === '') {
    throw new UserError(`${where} is not user:password`, 'write the user name, a colon, then the password')
  }

  return {user, password: decode(text.slice(colon + 1))}
}

/** The backend value with any password replaced by ***, for messages. */
export function redactUri(raw: string): string {
  const start = raw.includes('://') ? raw.indexOf('://') + 3 : 0
  const at = raw.lastIndexOf('@')
  if (at < start) return raw
  const userinfo = raw.slice(start, at)
  const colon = userinfo.indexOf(':')
  return colon === -1 ? raw : `${raw.slice(0, start)}${userinfo.slice(0, colon)}:***${raw.slice(at)}`
}

/** Consul's settings from its variables (where the flags land too): token, HTTPS, client certificate. */
function consulSpec(hosts: HostPort[], https: boolean, env: Env): BackendSpec {
  const token = consulToken(env)
  const tls: TlsFiles = {}
  if (env.CONSUL_CACERT) tls.ca = env.CONSUL_CACERT
  if (env.CONSUL_CLIENT_CERT) tls.cert = env.CONSUL_CLIENT_CERT
  if (env.CONSUL_CLIENT_KEY) tls.key = env.CONSUL_CLIENT_KEY
  if (https && (tls.cert === undefined) !== (tls.key === undefined)) {
    throw new UserError(
      'a Consul client certificate needs its key, and a key its certificate',
      'pass both --cert and --key (or CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY)',
    )
  }

  return {
    kind: 'consul',
    hosts,
    ...(token ? {token} : {}),
    ...(https ? {https} : {}),
    ...(https && Object.keys(tls).length > 0 ? {tls} : {}),
  }
}

/** Accepts `h:p`, `h`, `[v6]:p` and `http://h:p` (the form CONSUL_HTTP_ADDR and ETCDCTL_ENDPOINTS use). */
export function parseHosts(list: string, defaultPort: number, raw: string): HostPort[] {
  const hosts: HostPort[] = []
  for (const part of list.split(',')) {
    const item = part
      .trim()
      .replace(/^https?:\/\//i, '')
      .replace(/\/+$/, '')
    if (item === '') continue
    const v6 = /^\[([^\]]+)\](?::(.*))?$/.exec(item)
    let host: string
    let portText: string | undefined
    if (v6) {
      host = v6[1]!
      portText = v6[2]
    } else {
      const colon = item.lastIndexOf(':')
      host = colon === -1 ? item : item.slice(0, colon)
      portText = colon === -1 ? undefined : item.slice(colon + 1)
    }

    if (!/^[\w.:-]+$/.test(host)) {
      throw new UserError(
        `invalid host "${host}" in backend "${raw}"`,
        'write addresses as host:port, separated by commas',
      )
    }

    const port = portText === undefined ? defaultPort : Number(portText)
    if (!Number.isInteger(port) || port < 1 || port > 65_535) {
      throw new UserError(`invalid port "${portText}" in backend "${raw}"`, 'use a port from 1 to 65535')
    }

    hosts.push({host, port})
  }

  if (hosts.length === 0) throw new UserError(`backend "${raw}" names no address`, 'write addresses as host:port')
  return hosts
}

export function formatHosts(hosts: HostPort[]): string {
  return hosts.map((h) => (h.host.includes(':') ? `[${h.host}]:${h.port}` : `${h.host}:${h.port}`)).join(',')
}

/** The spec as a URI, without secrets. */
export function describeBackend(spec: BackendSpec): string {
  switch (spec.kind) {
    case 'local': {
      return `local://${spec.dir}`
    }

    case 'zk': {
      return `zk://${userPart(spec.auth)}${formatHosts(spec.hosts)}${spec.base}`
    }

    case 'etcd': {
      return `${spec.tls ? 'etcds' : 'etcd'}://${userPart(spec.auth)}${formatHosts(spec.hosts)}${spec.prefix}`
    }

    case 'consul': {
      return `${spec.https ? 'consul+https' : 'consul'}://${formatHosts(spec.hosts)}`
    }
  }
}

function userPart(auth: Credentials | undefined): string {
  return auth ? `${encodeURIComponent(auth.user)}:***@` : ''
}
