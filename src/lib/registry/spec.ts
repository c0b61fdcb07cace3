import {readFileSync} from 'node:fs'
import {homedir} from 'node:os'
import path from 'node:path'

import {UserError} from '../errors.js'
import type {BackendKind} from './types.js'

export interface HostPort {
  host: string
  port: number
}

/** TLS files (paths): the CA that signs the servers' certificates, and a client certificate and key. */
export interface TlsFiles {
  ca?: string
  cert?: string
  key?: string
}

export type BackendSpec =
  | {kind: 'local'; dir: string}
  | {kind: 'zk'; hosts: HostPort[]; base: string}
  | {kind: 'consul'; hosts: HostPort[]; token?: string; https?: boolean; tls?: TlsFiles}
  | {kind: 'etcd'; hosts: HostPort[]; prefix: string}

const SCHEMES: Record<string, BackendKind> = {
  local: 'local',
  zk: 'zk',
  zookeeper: 'zk',
  consul: 'consul',
  'consul+https': 'consul',
  etcd: 'etcd',
}

const DEFAULT_PORTS: Record<Exclude<BackendKind, 'local'>, number> = {zk: 2181, consul: 8500, etcd: 2379}

const USAGE_HINT = 'use local, zk, consul or etcd, or a URI such as zk://127.0.0.1:2181/services'

export type Env = Record<string, string | undefined>

/** svc's state directory: $SVC_HOME, else ${XDG_STATE_HOME:-~/.local/state}/svc. */
export function svcHome(env: Env = process.env): string {
  if (env.SVC_HOME) return env.SVC_HOME
  const state = env.XDG_STATE_HOME || path.join(homedir(), '.local', 'state')
  return path.join(state, 'svc')
}

/** The embedded registry's directory: $SVC_HOME/registry, else the XDG state directory. */
export function defaultLocalDir(env: Env = process.env): string {
  return path.join(svcHome(env), 'registry')
}

/** Parses `--backend` / SVC_BACKEND: a bare name or a URI with comma-separated addresses. */
export function parseBackend(value: string | undefined, env: Env = process.env): BackendSpec {
  const raw = (value ?? '').trim() || 'local'
  const match = /^([a-z][a-z0-9+.-]*)(?::\/\/(.*))?$/i.exec(raw)
  const kind = match ? SCHEMES[match[1]!.toLowerCase()] : undefined
  if (!match || !kind) {
    const scheme = raw.includes('://') ? raw.slice(0, raw.indexOf('://')) : raw
    throw new UserError(`unknown backend "${scheme}"`, USAGE_HINT)
  }

  const rest = match[2]
  if (kind === 'local') {
    if (rest === undefined || rest === '') return {kind, dir: defaultLocalDir(env)}
    return {kind, dir: path.resolve(rest)}
  }

  let hostsPart: string
  let pathPart = ''
  if (rest === undefined) {
    hostsPart = defaultHosts(kind, env)
  } else {
    const slash = rest.indexOf('/')
    hostsPart = slash === -1 ? rest : rest.slice(0, slash)
    pathPart = slash === -1 ? '' : rest.slice(slash)
    if (hostsPart === '') hostsPart = defaultHosts(kind, env)
  }

  const hosts = parseHosts(hostsPart, DEFAULT_PORTS[kind], raw)
  switch (kind) {
    case 'zk': {
      return {kind, hosts, base: normalizeBase(pathPart, '/services', raw)}
    }

    case 'etcd': {
      return {kind, hosts, prefix: normalizeBase(pathPart, '/services', raw)}
    }

    case 'consul': {
      if (pathPart && pathPart !== '/') {
        throw new UserError(
          `consul URI "${raw}" has a path`,
          'Consul URIs name only agents: consul://host:8500[,host2:8500]',
        )
      }

      return consulSpec(hosts, match[1]!.toLowerCase() === 'consul+https' || usesHttps(hostsPart, env), env)
    }
  }
}

/** The values of the shared backend flags; each one beats its environment variable. */
export interface BackendFlagValues {
  backend?: string
  token?: string
  cacert?: string
  cert?: string
  key?: string
}

/** The backend the flags name, with the environment filling in what they leave out. */
export function specFromFlags(flags: BackendFlagValues, env: Env = process.env): BackendSpec {
  const over: Env = {
    CONSUL_HTTP_TOKEN: flags.token,
    CONSUL_CACERT: flags.cacert,
    CONSUL_CLIENT_CERT: flags.cert,
    CONSUL_CLIENT_KEY: flags.key,
  }
  const merged: Env = {...env}
  for (const [name, value] of Object.entries(over)) if (value) merged[name] = value
  return parseBackend(flags.backend, merged)
}

function usesHttps(hostsPart: string, env: Env): boolean {
  return /^\s*https:\/\//i.test(hostsPart) || /^(1|true)$/i.test(env.CONSUL_HTTP_SSL?.trim() ?? '')
}

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

/** CONSUL_HTTP_TOKEN (where --token lands too), else the contents of CONSUL_HTTP_TOKEN_FILE. */
function consulToken(env: Env): string | undefined {
  if (env.CONSUL_HTTP_TOKEN) return env.CONSUL_HTTP_TOKEN
  const file = env.CONSUL_HTTP_TOKEN_FILE
  if (!file) return undefined
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable'
    throw new UserError(
      `cannot read the Consul token file ${file} named by CONSUL_HTTP_TOKEN_FILE (${code})`,
      'point CONSUL_HTTP_TOKEN_FILE at a readable file that holds the token, or pass --token',
    )
  }

  const token = text.trim()
  if (token === '') {
    throw new UserError(
      `the Consul token file ${file} named by CONSUL_HTTP_TOKEN_FILE is empty`,
      'write the token into it, or pass --token',
    )
  }

  return token
}

function defaultHosts(kind: Exclude<BackendKind, 'local'>, env: Env): string {
  if (kind === 'consul' && env.CONSUL_HTTP_ADDR) return env.CONSUL_HTTP_ADDR
  if (kind === 'etcd' && env.ETCDCTL_ENDPOINTS) return env.ETCDCTL_ENDPOINTS
  if (kind === 'zk' && env.ZOOKEEPER_HOSTS) return env.ZOOKEEPER_HOSTS
  return `127.0.0.1:${DEFAULT_PORTS[kind]}`
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

function normalizeBase(p: string, fallback: string, raw: string): string {
  const trimmed = p.replace(/\/+$/, '')
  if (trimmed === '') return fallback
  if (!/^(\/[\w.-]+)+$/.test(trimmed)) {
    throw new UserError(`invalid base path "${p}" in backend "${raw}"`, 'use a path such as /services')
  }

  return trimmed
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
      return `zk://${formatHosts(spec.hosts)}${spec.base}`
    }

    case 'etcd': {
      return `etcd://${formatHosts(spec.hosts)}${spec.prefix}`
    }

    case 'consul': {
      return `${spec.https ? 'consul+https' : 'consul'}://${formatHosts(spec.hosts)}`
    }
  }
}
