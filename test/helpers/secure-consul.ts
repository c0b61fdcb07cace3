import {type ChildProcess, execFileSync, spawn} from 'node:child_process'
import {mkdtempSync, openSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

import {findBinary} from '../../src/lib/cluster/binaries.js'
import {allocatePorts} from '../../src/lib/cluster/ports.js'
import {consulHttp} from './consul-api.js'

/** A CA and a certificate it signed for 127.0.0.1 (PEM files), made with openssl. */
export interface TestPki {
  ca: string
  cert: string
  key: string
  /** A second CA that signed nothing the server uses. */
  otherCa: string
  /** A client certificate the CA signed, and its key: the HTTPS port requires one. */
  clientCert: string
  clientKey: string
}

function openssl(...args: string[]): void {
  execFileSync('openssl', args, {stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000})
}

/** openssl writes every key into a file: nothing secret goes on a command line. */
export function makePki(dir: string): TestPki {
  const file = (name: string): string => path.join(dir, name)

  for (const ca of ['ca', 'other-ca']) {
    openssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=svc test ${ca}`,
      '-keyout',
      file(`${ca}.key`),
      '-out',
      file(`${ca}.pem`),
    )
  }

  writeFileSync(file('server.ext'), 'subjectAltName = IP:127.0.0.1, DNS:localhost\n')
  openssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    '/CN=server.dc1.consul',
    '-keyout',
    file('server.key'),
    '-out',
    file('server.csr'),
  )
  openssl(
    'x509',
    '-req',
    '-in',
    file('server.csr'),
    '-CA',
    file('ca.pem'),
    '-CAkey',
    file('ca.key'),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    file('server.ext'),
    '-out',
    file('server.pem'),
  )
  openssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    '/CN=svc client',
    '-keyout',
    file('client.key'),
    '-out',
    file('client.csr'),
  )
  openssl(
    'x509',
    '-req',
    '-in',
    file('client.csr'),
    '-CA',
    file('ca.pem'),
    '-CAkey',
    file('ca.key'),
    '-CAcreateserial',
    '-days',
    '2',
    '-out',
    file('client.pem'),
  )
  return {
    ca: file('ca.pem'),
    cert: file('server.pem'),
    key: file('server.key'),
    otherCa: file('other-ca.pem'),
    clientCert: file('client.pem'),
    clientKey: file('client.key'),
  }
}

export interface SecureConsul {
  dir: string
  httpPort: number
  httpsPort: number
  pki: TestPki
  /** The bootstrap (management) token. */
  management: string
  stop(): Promise<void>
  /** One request to the plain-HTTP port, with a token in the X-Consul-Token header. */
  api(method: 'GET' | 'PUT' | 'DELETE', apiPath: string, token?: string, body?: unknown): Promise<unknown>
}

/**
 * One Consul 1.8 server (`-bootstrap-expect 1`) on free loopback ports with ACLs on (default deny) and an HTTPS
 * port whose certificate the test's own CA signed, and that wants a client certificate the same CA signed. ACLs are bootstrapped over HTTP; no token is on a command line.
 */
export async function startSecureConsul(): Promise<SecureConsul> {
  const dir = mkdtempSync(path.join(tmpdir(), 'svc-secure-consul-'))
  const pki = makePki(dir)
  const [httpPort, httpsPort, serfLan, serfWan, server] = (await allocatePorts(5)) as [
    number,
    number,
    number,
    number,
    number,
  ]
  const config = path.join(dir, 'acl.hcl')
  writeFileSync(
    config,
    [
      'acl { enabled = true, default_policy = "deny", enable_token_persistence = true }',
      `ports { https = ${httpsPort} }`,
      `ca_file = "${pki.ca}"`,
      `cert_file = "${pki.cert}"`,
      `key_file = "${pki.key}"`,
      'verify_incoming = false',
      'verify_incoming_https = true',
      'verify_outgoing = false',
      'performance { raft_multiplier = 1 }',
      'disable_update_check = true',
      'disable_anonymous_signature = true',
    ].join('\n'),
  )
  const log = openSync(path.join(dir, 'consul.log'), 'a')
  const child: ChildProcess = spawn(
    findBinary('consul'),
    [
      'agent',
      '-server',
      '-bootstrap-expect',
      '1',
      '-bind',
      '127.0.0.1',
      '-client',
      '127.0.0.1',
      '-node',
      'secure-1',
      '-data-dir',
      path.join(dir, 'data'),
      '-disable-host-node-id',
      '-http-port',
      String(httpPort),
      '-serf-lan-port',
      String(serfLan),
      '-serf-wan-port',
      String(serfWan),
      '-server-port',
      String(server),
      '-dns-port',
      '-1',
      '-grpc-port',
      '-1',
      '-config-file',
      config,
    ],
    {stdio: ['ignore', log, log]},
  )
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve())
  })
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(timer)
    }

    rmSync(dir, {recursive: true, force: true})
  }

  const api = (method: 'GET' | 'PUT' | 'DELETE', apiPath: string, token?: string, body?: unknown) =>
    consulHttp({host: '127.0.0.1', port: httpPort}, method, apiPath, {token, body})
  try {
    const management = await bootstrap(api, child)
    // the agent's own token: under default deny it cannot sync its node (and so its services) without one
    await api('PUT', '/v1/agent/token/agent', management, {Token: management})
    return {dir, httpPort, httpsPort, pki, management, stop, api}
  } catch (error) {
    await stop()
    throw error
  }
}

async function bootstrap(api: SecureConsul['api'], child: ChildProcess): Promise<string> {
  const deadline = Date.now() + 60_000
  let last: unknown
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`consul exited with status ${child.exitCode}`)
    try {
      const answer = (await api('PUT', '/v1/acl/bootstrap')) as {SecretID?: string}
      if (answer.SecretID) return answer.SecretID
    } catch (error) {
      // no leader yet, or ACLs not initialised: try again
      last = error
    }

    await sleep(250)
  }

  throw new Error(`could not bootstrap Consul ACLs within 60 s: ${String(last)}`)
}

/** A policy with `rules` and a token that carries it; returns the token's SecretID. */
export async function createToken(consul: SecureConsul, name: string, rules: string): Promise<string> {
  await consul.api('PUT', '/v1/acl/policy', consul.management, {Name: name, Rules: rules})
  const token = (await consul.api('PUT', '/v1/acl/token', consul.management, {
    Description: name,
    Policies: [{Name: name}],
  })) as {SecretID: string}
  return token.SecretID
}
