/** How a backend URI is taken apart, and where its addresses come from when it names none. */
import {readFileSync} from 'node:fs'

import {UserError} from '../errors.js'
import type {BackendKind} from './types.js'

export type Env = Record<string, string | undefined>

export type RemoteKind = Exclude<BackendKind, 'local'>

export const DEFAULT_PORTS: Record<RemoteKind, number> = {zk: 2181, consul: 8500, etcd: 2379}

/** The part of a URI after `scheme://`: user info, the address list and the path, each as written. */
export interface UriParts {
  userinfo: string | undefined
  hostsPart: string
  pathPart: string
}

/** Splits what follows `scheme://`; the last @ ends the user info, so a password may hold / and @ unencoded. */
export function splitUri(rest: string | undefined): UriParts {
  if (rest === undefined) return {userinfo: undefined, hostsPart: '', pathPart: ''}
  const at = rest.lastIndexOf('@')
  const userinfo = at === -1 ? undefined : rest.slice(0, at)
  const hostPath = at === -1 ? rest : rest.slice(at + 1)
  const slash = hostPath.indexOf('/')
  return {
    userinfo,
    hostsPart: slash === -1 ? hostPath : hostPath.slice(0, slash),
    pathPart: slash === -1 ? '' : hostPath.slice(slash),
  }
}

/** The addresses to use: the URI's, else the kind's variable (named as the origin), else the default port. */
export function uriAddresses(
  kind: RemoteKind,
  hostsPart: string,
  env: Env,
): {hostsPart: string; origin: {origin: string} | undefined; httpsFromEnv: boolean} {
  if (hostsPart !== '') return {hostsPart, origin: undefined, httpsFromEnv: false}
  const variable = hostsVariable(kind, env)
  const hosts = defaultHosts(kind, env)
  return {
    hostsPart: hosts,
    origin: variable === undefined ? undefined : {origin: variable},
    // ETCDCTL_ENDPOINTS=https://... means TLS, as it does for etcdctl
    httpsFromEnv: kind === 'etcd' && /^\s*https:\/\//i.test(hosts),
  }
}

function hostsVariable(kind: RemoteKind, env: Env): string | undefined {
  const variable = {consul: 'CONSUL_HTTP_ADDR', etcd: 'ETCDCTL_ENDPOINTS', zk: 'ZOOKEEPER_HOSTS'}[kind]
  return env[variable] ? variable : undefined
}

function defaultHosts(kind: RemoteKind, env: Env): string {
  if (kind === 'consul' && env.CONSUL_HTTP_ADDR) return env.CONSUL_HTTP_ADDR
  if (kind === 'etcd' && env.ETCDCTL_ENDPOINTS) return env.ETCDCTL_ENDPOINTS
  if (kind === 'zk' && env.ZOOKEEPER_HOSTS) return env.ZOOKEEPER_HOSTS
  return `127.0.0.1:${DEFAULT_PORTS[kind]}`
}

/** Consul over HTTPS: an https:// address, or CONSUL_HTTP_SSL. */
export function usesHttps(hostsPart: string, env: Env): boolean {
  return /^\s*https:\/\//i.test(hostsPart) || /^(1|true)$/i.test(env.CONSUL_HTTP_SSL?.trim() ?? '')
}

/** CONSUL_HTTP_TOKEN (where --token lands too), else the contents of CONSUL_HTTP_TOKEN_FILE. */
export function consulToken(env: Env): string | undefined {
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

/** A zk base or etcd prefix: trailing slashes dropped, `fallback` when empty. */
export function normalizeBase(p: string, fallback: string, raw: string): string {
  const trimmed = p.replace(/\/+$/, '')
  if (trimmed === '') return fallback
  if (!/^(\/[\w.-]+)+$/.test(trimmed)) {
    throw new UserError(`invalid base path "${p}" in backend "${raw}"`, 'use a path such as /services')
  }

  return trimmed
}
