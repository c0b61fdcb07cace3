import type {ChildProcess} from 'node:child_process'
import {writeFileSync} from 'node:fs'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {formatError} from '../../src/lib/errors.js'
import {openRegistry} from '../../src/lib/registry/index.js'
import type {BackendSpec} from '../../src/lib/registry/spec.js'
import type {Registry, ServiceInstance} from '../../src/lib/registry/types.js'
import {type CliResult, runCli, spawnCli, waitForExit, waitForOutput} from '../helpers/cli.js'
import {recordSecret} from '../helpers/secrets.js'
import {createToken, type SecureConsul, startSecureConsul} from '../helpers/secure-consul.js'

// What svc needs for service "web": write it, read the catalog's nodes and services, read the agent (node names).
const WEB_RULES = [
  'service "web" { policy = "write" }',
  'service_prefix "" { policy = "read" }',
  'node_prefix "" { policy = "read" }',
  'agent_prefix "" { policy = "read" }',
].join('\n')
const READ_ONLY_RULES = ['service_prefix "" { policy = "read" }', 'node_prefix "" { policy = "read" }'].join('\n')

/** The parent's Consul settings must not leak into the spawned svc: each test says what it passes. */
const CLEAN_ENV: NodeJS.ProcessEnv = {
  CONSUL_HTTP_TOKEN: undefined,
  CONSUL_HTTP_TOKEN_FILE: undefined,
  CONSUL_HTTP_ADDR: undefined,
  CONSUL_HTTP_SSL: undefined,
  CONSUL_CACERT: undefined,
  CONSUL_CLIENT_CERT: undefined,
  CONSUL_CLIENT_KEY: undefined,
  SVC_BACKEND: undefined,
  DEBUG: undefined,
}

let consul: SecureConsul
let good: string
let readOnly: string
let uri: string
let httpsUri: string
/** Every output svc produced in this file, checked for the secrets at the end. */
const outputs: Array<{what: string; text: string}> = []

async function svc(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const result = await runCli(args, {env: {...CLEAN_ENV, ...env}, timeoutMs: 30_000})
  outputs.push({what: `svc ${args[0]}`, text: result.stdout + result.stderr})
  return result
}

function open(token?: string, log: string[] = []): Promise<Registry> {
  const spec: BackendSpec = {kind: 'consul', hosts: [{host: '127.0.0.1', port: consul.httpPort}]}
  return openRegistry(token ? {...spec, token} : spec, {log: (m) => log.push(m)})
}

/** One line on stderr, "Error: ...", no stack trace. */
function expectOneLineError(result: CliResult, pattern: RegExp): void {
  expect(result.code).not.toBe(0)
  const lines = result.stderr.trim().split('\n')
  expect(lines.at(-1)).toMatch(/^Error: /)
  expect(lines.at(-1)).toMatch(pattern)
  expect(result.stderr).not.toMatch(/^\s+at /m)
}

function ids(stdout: string): string[] {
  return (JSON.parse(stdout) as ServiceInstance[]).map((i) => i.id)
}

beforeAll(async () => {
  consul = await startSecureConsul()
  recordSecret(consul.management)
  good = await createToken(consul, 'svc-web', WEB_RULES)
  readOnly = await createToken(consul, 'read-only', READ_ONLY_RULES)
  recordSecret(good)
  recordSecret(readOnly)
  uri = `consul://127.0.0.1:${consul.httpPort}`
  httpsUri = `consul+https://127.0.0.1:${consul.httpsPort}`
}, 90_000)

afterAll(async () => {
  await consul?.stop()
})

describe('Consul with ACLs (default deny): the library', () => {
  it('registers, resolves and deregisters with a token whose policy grants service "web"', async () => {
    const registry = await open(good)
    try {
      const handle = await registry.register({service: 'web', id: 'web-lib', address: '127.0.0.1', port: 8081})
      expect((await registry.listInstances('web')).map((i) => i.id)).toContain('web-lib')
      await handle.close({deregister: false})
      expect((await registry.deregister('web', 'web-lib')).removed).toBe(true)
      expect((await registry.listInstances('web')).map((i) => i.id)).not.toContain('web-lib')
    } finally {
      await registry.close()
    }
  })

  it('names the missing permission when the token lacks it', async () => {
    const registry = await open(readOnly)
    try {
      const error = await registry.register({service: 'web', id: 'web-denied', address: '127.0.0.1', port: 8082}).then(
        () => undefined,
        (error_: unknown) => error_,
      )
      const line = formatError(error)
      expect(line).toMatch(/^Consul refused the token: permission denied \(service:write on "web"\)/)
      expect(line).toContain('service "web" { policy = "write" }')
      expect(line).not.toContain(readOnly)
    } finally {
      await registry.close()
    }
  })

  it('says that no token was sent when there is none', async () => {
    const log: string[] = []
    const registry = await open(undefined, log)
    try {
      const error = await registry.register({service: 'web', id: 'web-anon', address: '127.0.0.1', port: 8083}).then(
        () => undefined,
        (error_: unknown) => error_,
      )
      expect(formatError(error)).toMatch(/permission denied \(service:write on "web"\), and svc sent no ACL token/)
      // reads are filtered, not refused: the empty answer comes with one warning
      expect(await registry.listServices()).toEqual([])
      expect(log.filter((l) => /enforces ACLs and svc sent no token/.test(l))).toHaveLength(1)
    } finally {
      await registry.close()
    }
  })
})

describe('Consul with ACLs: the CLI', () => {
  let registered: ChildProcess | undefined
  let registeredOutput = ''

  afterAll(async () => {
    if (registered && registered.exitCode === null) {
      registered.kill('SIGTERM')
      await waitForExit(registered, 15_000).catch(() => registered?.kill('SIGKILL'))
    }
  })

  it('registers with --token and resolves with CONSUL_HTTP_TOKEN and CONSUL_HTTP_TOKEN_FILE', async () => {
    registered = spawnCli(
      ['register', 'web', '--port', '8080', '--address', '127.0.0.1', '--id', 'web-cli', '-b', uri, '--token', good],
      CLEAN_ENV,
    )
    registered.stdout!.on('data', (d: Buffer) => {
      registeredOutput += d.toString()
    })
    registered.stderr!.on('data', (d: Buffer) => {
      registeredOutput += d.toString()
    })
    await waitForOutput(registered, /registered web web-cli/, 20_000)

    const byEnv = await svc(['resolve', 'web', '-b', uri, '--json'], {CONSUL_HTTP_TOKEN: good})
    expect(byEnv.code).toBe(0)
    expect(ids(byEnv.stdout)).toEqual(['web-cli'])

    const file = path.join(consul.dir, 'token')
    writeFileSync(file, `${good}\n`, {mode: 0o600})
    const byFile = await svc(['resolve', 'web', '-b', uri, '--json'], {CONSUL_HTTP_TOKEN_FILE: file})
    expect(byFile.code).toBe(0)
    expect(ids(byFile.stdout)).toEqual(['web-cli'])

    // --token beats CONSUL_HTTP_TOKEN (here a token without the rights)
    const byFlag = await svc(['resolve', '-b', uri, '--json', '--token', good], {CONSUL_HTTP_TOKEN: readOnly})
    expect(byFlag.code).toBe(0)
  })

  it('reaches the HTTPS port with --cacert or CONSUL_CACERT (and a client certificate), one-line TLS errors', async () => {
    const pki = consul.pki
    const client = ['--cert', pki.clientCert, '--key', pki.clientKey]
    const byFlag = await svc([
      'resolve',
      'web',
      '-b',
      httpsUri,
      '--cacert',
      pki.ca,
      ...client,
      '--json',
      '--token',
      good,
    ])
    expect(byFlag.code).toBe(0)
    expect(ids(byFlag.stdout)).toEqual(['web-cli'])

    const byEnv = await svc(['resolve', 'web', '--json'], {
      CONSUL_HTTP_ADDR: `https://127.0.0.1:${consul.httpsPort}`,
      SVC_BACKEND: 'consul',
      CONSUL_CACERT: pki.ca,
      CONSUL_CLIENT_CERT: pki.clientCert,
      CONSUL_CLIENT_KEY: pki.clientKey,
      CONSUL_HTTP_TOKEN: good,
    })
    expect(byEnv.code).toBe(0)
    expect(ids(byEnv.stdout)).toEqual(['web-cli'])

    const wrongCa = await svc(['resolve', 'web', '-b', httpsUri, '--cacert', pki.otherCa, ...client, '--token', good])
    expectOneLineError(wrongCa, /TLS with consul agent 127\.0\.0\.1:\d+ failed: the agent's certificate is not trusted/)
    expect(wrongCa.stderr).toContain('--cacert or CONSUL_CACERT')

    const noClientCert = await svc(['resolve', 'web', '-b', httpsUri, '--cacert', pki.ca, '--token', good])
    expectOneLineError(noClientCert, /the agent rejected the TLS handshake .*--cert and --key/)

    const plainPort = await svc([
      'resolve',
      'web',
      '-b',
      `consul+https://127.0.0.1:${consul.httpPort}`,
      '--cacert',
      pki.ca,
    ])
    expectOneLineError(plainPort, /the agent does not speak HTTPS on that port/)
  })

  it('fails in one line, naming the permission, with a token that lacks it (also with --json)', async () => {
    const human = await svc([
      'register',
      'web',
      '--port',
      '8080',
      '--address',
      '127.0.0.1',
      '-b',
      uri,
      '--token',
      readOnly,
    ])
    expectOneLineError(human, /Consul refused the token: permission denied \(service:write on "web"\)/)

    const json = await svc(['deregister', 'web', 'web-cli', '-b', uri, '--json'], {CONSUL_HTTP_TOKEN: readOnly})
    expectOneLineError(json, /permission denied \(service:write on "web"\)/)
    const body = JSON.parse(json.stdout) as {error: {message: string}}
    expect(body.error.message).toContain('service "web" { policy = "write" }')
  })

  it('fails clearly without a token, and names an unreadable token file', async () => {
    const anonymous = await svc(['register', 'web', '--port', '8080', '--address', '127.0.0.1', '-b', uri])
    expectOneLineError(anonymous, /svc sent no ACL token/)

    const hidden = await svc(['resolve', 'web', '-b', uri])
    expect(hidden.code).toBe(1)
    expect(hidden.stderr).toMatch(/enforces ACLs and svc sent no token/)

    const missing = path.join(consul.dir, 'no-such-token')
    const unreadable = await svc(['resolve', '-b', uri], {CONSUL_HTTP_TOKEN_FILE: missing})
    expect(unreadable.code).toBe(2)
    expectOneLineError(unreadable, new RegExp(`cannot read the Consul token file ${missing} `))
  })

  it('deregisters with the token and the registration ends cleanly', async () => {
    const removed = await svc(['deregister', 'web', 'web-cli', '-b', uri, '--token', good])
    expect(removed.code).toBe(0)
    registered!.kill('SIGTERM')
    expect(await waitForExit(registered!, 15_000)).toBe(0)
    outputs.push({what: 'svc register (background)', text: registeredOutput})
  })
})

describe('Consul data that other tools wrote', () => {
  beforeAll(async () => {
    const token = consul.management
    await consul.api('PUT', '/v1/agent/service/register', token, {
      Name: 'web',
      ID: 'ext-port0',
      Address: '127.0.0.1',
      Port: 0,
    })
    // no service address: Consul's rule is the node's address (127.0.0.1 here)
    await consul.api('PUT', '/v1/agent/service/register', token, {Name: 'web', ID: 'ext-nodeaddr', Port: 9000})
    await consul.api('PUT', '/v1/catalog/register', token, {
      Node: 'ext-node',
      Address: '0.0.0.0',
      Service: {ID: 'ext-noaddr', Service: 'web', Port: 9001},
    })
  })

  afterAll(async () => {
    const token = consul.management
    await consul.api('PUT', '/v1/agent/service/deregister/ext-port0', token).catch(() => {})
    await consul.api('PUT', '/v1/agent/service/deregister/ext-nodeaddr', token).catch(() => {})
    await consul.api('PUT', '/v1/catalog/deregister', token, {Node: 'ext-node'}).catch(() => {})
  })

  it('skips what has no address or port 0 with one warning each; the rest, node-address fallback included, resolves', async () => {
    const log: string[] = []
    const registry = await open(good, log)
    try {
      const handle = await registry.register({service: 'web', id: 'web-svc', address: '127.0.0.1', port: 8090})
      const instances = await registry.listInstances('web')
      expect(instances.map((i) => `${i.id} ${i.address}:${i.port}`).sort()).toEqual([
        'ext-nodeaddr 127.0.0.1:9000',
        'web-svc 127.0.0.1:8090',
      ])
      await registry.listInstances('web')
      expect(await registry.listServices()).toEqual([{name: 'web', instances: 2, passing: 2}])
      // one warning per record, however often it is read
      const warnings = log.filter((l) => l.startsWith('skipping '))
      expect(warnings.sort()).toEqual([
        expect.stringMatching(/^skipping web\/ext-noaddr: .*invalid address ""/),
        expect.stringMatching(/^skipping web\/ext-port0: .*invalid port "0"/),
      ])

      // a watch of its own (another registry) warns once too, and still shows the rest
      const watchLog: string[] = []
      const watcher = await open(good, watchLog)
      let snapshots = 0
      try {
        for await (const event of watcher.watch('web', {signal: AbortSignal.timeout(15_000)})) {
          if (event.type !== 'snapshot') continue
          expect(event.instances.map((i) => i.id).sort()).toEqual(['ext-nodeaddr', 'web-svc'])
          snapshots++
          break
        }
      } finally {
        await watcher.close()
      }

      expect(snapshots).toBe(1)
      expect(watchLog.filter((l) => l.startsWith('skipping '))).toHaveLength(2)
      await handle.close()
    } finally {
      await registry.close()
    }
  })

  it('resolves through the CLI with one warning line per skipped record, never a crash', async () => {
    const result = await svc(['resolve', 'web', '-b', uri, '--all', '--json', '--token', good])
    expect(result.code).toBe(0)
    expect(ids(result.stdout)).toEqual(['ext-nodeaddr'])
    expect(result.stderr.split('\n').filter((l) => l.includes('skipping '))).toHaveLength(2)
  })
})

describe('secrets', () => {
  it('printed no secret anywhere: output, errors, --json', () => {
    expect(outputs.length).toBeGreaterThan(10)
    for (const [name, secret] of Object.entries({good, readOnly, management: consul.management})) {
      const leaked = outputs.filter((o) => o.text.includes(secret)).map((o) => o.what)
      expect(leaked, `the ${name} token appears in`).toEqual([])
    }
  })
})
