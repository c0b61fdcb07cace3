import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'

import {testBackends} from '../helpers/backends.js'
import {runCli, spawnCli, waitForExit, waitForOutput} from '../helpers/cli.js'

const home = mkdtempSync(path.join(tmpdir(), 'svc-e2e-'))
const env = {SVC_HOME: home, SVC_BACKEND: ''}
const svc = (...args: string[]) => runCli(args, {env})

function expectOneLineError(result: {code: number | null; stderr: string; stdout: string}, pattern: RegExp): void {
  expect(result.code).not.toBe(0)
  expect(result.stdout).toBe('')
  const lines = result.stderr.trim().split('\n')
  expect(lines).toHaveLength(1)
  expect(lines[0]).toMatch(/^Error: /)
  expect(lines[0]).toMatch(pattern)
  expect(result.stderr).not.toMatch(/\n\s+at /)
}

describe('svc register / resolve / deregister on the local backend', () => {
  const running: ReturnType<typeof spawnCli>[] = []
  afterAll(async () => {
    for (const child of running) child.kill('SIGTERM')
    await Promise.all(running.map((c) => waitForExit(c)))
  })

  it('registers in the foreground, resolves, picks, and deregisters on SIGINT', async () => {
    const a = spawnCli(['register', 'web', '--port', '8081', '--tag', 'v1', '--meta', 'version=1.0'], env)
    const b = spawnCli(['register', 'web', '--port', '8082', '--tag', 'v2', '--id', 'web-b'], env)
    running.push(a, b)
    expect(await waitForOutput(a, /^registered /)).toMatch(
      /^registered web web:127\.0\.0\.1:8081 at 127\.0\.0\.1:8081 on local:\/\//,
    )
    await waitForOutput(b, /^registered /)

    const services = await svc('resolve')
    expect(services.code).toBe(0)
    expect(services.stdout).toMatch(/^SERVICE\s+INSTANCES\s+PASSING\nweb\s+2\s+2\n$/)

    const table = await svc('resolve', 'web')
    expect(table.code).toBe(0)
    expect(table.stdout).toContain('web:127.0.0.1:8081  127.0.0.1:8081  passing  v1    version=1.0')
    expect(table.stdout).toContain('web-b')

    const json = await svc('resolve', 'web', '--json')
    const instances = JSON.parse(json.stdout) as Array<{id: string; port: number; tags: string[]}>
    expect(instances.map((i) => i.port)).toEqual([8081, 8082])
    expect(json.stderr).toBe('')

    const tagged = await svc('resolve', 'web', '--tag', 'v2', '--json')
    expect((JSON.parse(tagged.stdout) as Array<{id: string}>).map((i) => i.id)).toEqual(['web-b'])

    const picked = await svc('resolve', 'web', '--pick')
    expect(picked.stdout).toMatch(/^127\.0\.0\.1:808[12]\n$/)
    const rr1 = await svc('resolve', 'web', '--pick', 'round-robin')
    const rr2 = await svc('resolve', 'web', '--pick', 'round-robin')
    expect(new Set([rr1.stdout, rr2.stdout]).size).toBe(2)

    const removed = await svc('deregister', 'web', 'web-b')
    expect(removed).toMatchObject({code: 0, stdout: 'deregistered web web-b\n'})
    // its owner lives: the warning names it, and stopping it is what removes the instance for good
    expect(removed.stderr).toContain(`pid ${b.pid} on host`)
    b.kill('SIGTERM')
    await waitForExit(b)
    const again = await svc('deregister', 'web', 'web-b')
    expectOneLineError(again, /no instance "web-b" of service "web"/)
    expect(again.code).toBe(1)

    a.kill('SIGINT')
    expect(await waitForExit(a)).toBe(0)
    const none = await svc('resolve', 'web')
    expect(none.code).toBe(1)
    expectOneLineError(none, /no instance of "web" is registered/)
  })

  it('exits 1 with a clear message when no instance is healthy', async () => {
    // the check points at a port nothing listens on, so the instance is critical
    const child = spawnCli(['register', 'sick', '--port', '1', '--check-tcp', '--check-interval', '1s'], env)
    running.push(child)
    await waitForOutput(child, /^registered /)
    const result = await svc('resolve', 'sick')
    expectOneLineError(result, /no healthy instance of "sick" \(1 registered, 1 critical\).*--all/)
    expect(result.code).toBe(1)
    const all = await svc('resolve', 'sick', '--all', '--json')
    expect(JSON.parse(all.stdout)).toMatchObject([{service: 'sick', health: 'critical'}])
    child.kill('SIGTERM')
    await waitForExit(child)
  })
})

describe('bad input gets one line, a fix, a non-zero status and no stack trace', () => {
  it.each([
    [['resolve', '-b', 'mysql://db:3306'], /unknown backend "mysql": use local, zk, consul or etcd/],
    [['resolve', '-b', 'zk://127.0.0.1:notaport'], /invalid port "notaport" in backend/],
    [['register', 'web', '--port', 'abc'], /--port: invalid port "abc": use an integer from 1 to 65535/],
    [['register', 'web', '--port', '70000'], /invalid port "70000"/],
    [['register', 'web', '--port', '0'], /invalid port "0"/],
    [['register', 'bad name', '--port', '80'], /invalid service name "bad name".*letters, digits/],
    [['register', 'x'.repeat(129), '--port', '80'], /is 129 characters long.*at most 128/],
    [['register', 'web', '--port', '80', '--meta', 'novalue'], /malformed --meta "novalue": write it as KEY=VALUE/],
    [['register', 'web', '--port', '80', '--meta', '=v'], /malformed --meta "=v"/],
    [['register', 'web', '--port', '80', '--ttl', 'soon'], /--ttl: invalid duration "soon"/],
    [['resolve', 'a/b'], /invalid service name "a\/b"/],
    [['deregister', 'web', 'bad id!'], /invalid instance id/],
  ])('svc %j', async (args, pattern) => {
    expectOneLineError(await svc(...args), pattern)
  })

  it('leaves registrations alone when a command gets bad input', async () => {
    const child = spawnCli(['register', 'keep', '--port', '9100'], env)
    await waitForOutput(child, /^registered /)
    await svc('deregister', 'keep', 'bad id!')
    await svc('register', 'keep', '--port', 'nope')
    const result = await svc('resolve', 'keep', '--json')
    expect(JSON.parse(result.stdout)).toHaveLength(1)
    child.kill('SIGTERM')
    await waitForExit(child)
  })

  it.each([
    ['zk://127.0.0.1:1,127.0.0.1:2', /cannot reach zookeeper at 127\.0\.0\.1:1,127\.0\.0\.1:2/],
    ['etcd://127.0.0.1:1,127.0.0.1:2', /cannot reach etcd at 127\.0\.0\.1:1,127\.0\.0\.1:2/],
    ['consul://127.0.0.1:1,127.0.0.1:2', /cannot reach consul at 127\.0\.0\.1:1,127\.0\.0\.1:2/],
  ])('an unreachable %s answers within 10 s, naming backend and addresses', async (uri, pattern) => {
    const started = Date.now()
    const result = await svc('resolve', 'web', '-b', uri)
    expect(Date.now() - started).toBeLessThan(10_000)
    expectOneLineError(result, pattern)
  })
})

describe.each(testBackends().filter((b) => b.name !== 'local'))('svc commands against $name', (backend) => {
  it('register, resolve --json, deregister', async () => {
    const service = `e2e-${backend.name}-${Date.now().toString(36)}`
    const child = spawnCli([
      'register',
      service,
      '--port',
      '8900',
      '--address',
      '127.0.0.1',
      '--tag',
      'e2e',
      '-b',
      backend.uri,
    ])
    await waitForOutput(child, /^registered /)
    const result = await runCli(['resolve', service, '--json', '-b', backend.uri])
    expect(result.code).toBe(0)
    expect(JSON.parse(result.stdout)).toMatchObject([{service, address: '127.0.0.1', port: 8900, tags: ['e2e']}])
    const picked = await runCli(['resolve', service, '--pick', '-b', backend.uri])
    expect(picked.stdout).toBe('127.0.0.1:8900\n')
    const gone = await runCli(['deregister', service, `${service}:127.0.0.1:8900`, '-b', backend.uri])
    expect(gone.code).toBe(0)
    child.kill('SIGTERM')
    await waitForExit(child)
  })
})
