import {execFileSync} from 'node:child_process'
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {UserError} from '../../src/lib/errors.js'
import {MAX_INSTANCE_FILE_BYTES} from '../../src/lib/registry/local/files.js'
import {type LocalRegistry, localRegistry} from '../helpers/local.js'
import {currentOwner} from '../../src/lib/registry/core/owner.js'
import {OWNERS_DIR} from '../../src/lib/registry/local/directory.js'
import {ownerFileName} from '../../src/lib/registry/local/owners.js'
import {withDefaults} from '../../src/lib/registry/options.js'
import type {ServiceInstance, WatchEvent} from '../../src/lib/registry/types.js'

const NOBODY = 65_534

let root = ''
let logs: string[] = []
const registries: LocalRegistry[] = []

function open(dir: string): LocalRegistry {
  const registry = localRegistry({kind: 'local', dir}, withDefaults({log: (m) => logs.push(m)}))
  registries.push(registry)
  return registry
}

const mode = (file: string): number => lstatSync(file).mode % 0o1_0000

/** An instance file exactly as svc writes it, for planting expired or misplaced copies. */
function instanceFile(instance: Partial<ServiceInstance> & {service: string; id: string}, ttlMs = 10_000): string {
  const full = {address: '127.0.0.1', port: 9000, tags: [], meta: {}, health: 'passing', ...instance}
  return JSON.stringify({instance: full, ttlMs, owner: {pid: 1, host: 'h'}})
}

beforeEach(() => {
  root = mkdtempSync(path.join(tmpdir(), 'svc-harden-'))
  logs = []
})

afterEach(async () => {
  await Promise.all(registries.splice(0).map((r) => r.close()))
  rmSync(root, {recursive: true, force: true})
})

describe('local registry permissions', () => {
  it('creates missing directories at 0700 and files at 0600 whatever the umask', async () => {
    for (const umask of [0, 0o277]) {
      const home = path.join(root, `home-${umask}`)
      const dir = path.join(home, 'state', 'registry')
      const previous = process.umask(umask)
      try {
        const handle = await open(dir).register({service: 'web', address: '127.0.0.1', port: 8080})
        for (const d of [home, path.join(home, 'state'), dir, path.join(dir, 'web')]) expect(mode(d)).toBe(0o700)
        expect(mode(path.join(dir, 'web', `${encodeURIComponent(handle.instance.id)}.json`))).toBe(0o600)
        await handle.update({tags: ['v2']})
        expect(mode(path.join(dir, 'web', `${encodeURIComponent(handle.instance.id)}.json`))).toBe(0o600)
      } finally {
        process.umask(previous)
      }
    }

    // the parent that existed before keeps its mode: svc did not create it
    expect(mode(root)).toBe(0o700)
  })

  it('creates the directory again, at 0700, when it was removed under a live registration', async () => {
    const dir = path.join(root, 'registry')
    const registry = open(dir)
    const handle = await registry.register({service: 'web', address: '127.0.0.1', port: 8080})
    rmSync(dir, {recursive: true})
    await handle.update({tags: ['again']})
    expect(mode(dir)).toBe(0o700)
    expect(await registry.listInstances('web')).toEqual([{...handle.instance, tags: ['again']}])
  })

  it('tightens a looser registry directory of its own to 0700 on a write, never on a read, saying so once', async () => {
    const dir = path.join(root, 'registry')
    mkdirSync(dir)
    chmodSync(dir, 0o755)
    const registry = open(dir)
    expect(await registry.listServices()).toEqual([])
    expect(mode(dir)).toBe(0o755)
    await registry.register({service: 'web', address: '127.0.0.1', port: 8080})
    expect(mode(dir)).toBe(0o700)
    await registry.register({service: 'web', address: '127.0.0.1', port: 8081})
    expect(logs).toEqual([`tightened ${dir} from mode 0755 to 0700: the registry is private to its owner`])
  })

  it('refuses a directory owned by another user, and a shared sticky directory, without changing them', async () => {
    const theirs = path.join(root, 'theirs')
    mkdirSync(theirs, {mode: 0o755})
    chownSync(theirs, NOBODY, NOBODY)
    const sticky = path.join(root, 'sticky')
    mkdirSync(sticky)
    chmodSync(sticky, 0o1777)
    for (const [dir, why] of [
      [theirs, /belongs to uid 65534/],
      [sticky, /shared sticky directory/],
    ] as const) {
      const registry = open(dir)
      await expect(registry.register({service: 'web', address: '127.0.0.1', port: 80})).rejects.toThrow(why)
      await expect(registry.listServices()).rejects.toThrow(UserError)
      await expect(registry.listInstances('web')).rejects.toThrow(/refusing the local registry directory/)
      expect(existsSync(path.join(dir, 'web'))).toBe(false)
    }

    expect(mode(theirs)).toBe(0o755)
    expect(mode(sticky)).toBe(0o1777)
  })
})

describe('local registry and symbolic links', () => {
  it('refuses a registry directory that is a symbolic link, for reading and for writing', async () => {
    const real = path.join(root, 'real')
    mkdirSync(path.join(real, 'web'), {recursive: true, mode: 0o700})
    writeFileSync(path.join(real, 'web', 'a.json'), instanceFile({service: 'web', id: 'a'}), {mode: 0o600})
    const link = path.join(root, 'link')
    symlinkSync(real, link)
    const registry = open(link)
    const error = await registry.listInstances('web').catch((error_: unknown) => error_)
    expect(error).toBeInstanceOf(UserError)
    expect((error as Error).message).toBe(
      `refusing the local registry directory ${link}: it is a symbolic link, which svc does not follow`,
    )
    await expect(registry.register({service: 'web', address: '127.0.0.1', port: 81})).rejects.toThrow(/symbolic link/)
    await expect(registry.deregister('web', 'a')).rejects.toThrow(/symbolic link/)
    expect(existsSync(path.join(real, 'web', 'a.json'))).toBe(true)
    expect(
      execFileSync('ls', [path.join(real, 'web')])
        .toString()
        .trim(),
    ).toBe('a.json')
  })

  it('skips a symlinked instance file with one warning, never reading, writing or removing its target', async () => {
    const dir = path.join(root, 'registry')
    const registry = open(dir)
    const real = await registry.register({service: 'web', address: '127.0.0.1', port: 8080})
    // the link points at a valid, long expired instance file: following it would list or delete it
    const target = path.join(root, 'target.json')
    writeFileSync(target, instanceFile({service: 'web', id: 'planted'}, 1))
    utimesSync(target, new Date(0), new Date(0))
    const link = path.join(dir, 'web', 'planted.json')
    symlinkSync(target, link)
    const passwd = path.join(dir, 'web', 'x.json')
    symlinkSync('/etc/passwd', passwd)

    for (let i = 0; i < 3; i++) expect(await registry.listInstances('web')).toEqual([real.instance])
    expect(await registry.listServices()).toEqual([{name: 'web', instances: 1, passing: 1}])
    expect(logs.sort()).toEqual([
      `skipping ${link}: it is a symbolic link, which svc does not follow`,
      `skipping ${passwd}: it is a symbolic link, which svc does not follow`,
    ])
    expect(lstatSync(link).isSymbolicLink()).toBe(true)
    expect(statSync(target).mtimeMs).toBe(0)
  })

  it('skips a symlinked service directory, and refuses to register or deregister through it', async () => {
    const dir = path.join(root, 'registry')
    const registry = open(dir)
    await registry.register({service: 'web', address: '127.0.0.1', port: 8080})
    const elsewhere = path.join(root, 'elsewhere')
    mkdirSync(elsewhere, {mode: 0o700})
    writeFileSync(path.join(elsewhere, 'a.json'), instanceFile({service: 'api', id: 'a'}), {mode: 0o600})
    symlinkSync(elsewhere, path.join(dir, 'api'))

    expect(await registry.listServices()).toEqual([{name: 'web', instances: 1, passing: 1}])
    expect(await registry.listInstances('api')).toEqual([])
    expect(await registry.listInstances('api')).toEqual([])
    expect(logs).toEqual([`skipping ${path.join(dir, 'api')}: it is a symbolic link, which svc does not follow`])
    await expect(registry.register({service: 'api', address: '127.0.0.1', port: 1})).rejects.toThrow(
      /refusing the local registry directory .*api: it is a symbolic link/,
    )
    await expect(registry.deregister('api', 'a')).rejects.toThrow(/symbolic link/)
    expect(execFileSync('ls', [elsewhere]).toString().trim()).toBe('a.json')
  })

  it('replaces a symbolic link at its own file name instead of writing through it', async () => {
    const dir = path.join(root, 'registry')
    const target = path.join(root, 'precious')
    writeFileSync(target, 'do not touch\n')
    utimesSync(target, new Date(0), new Date(0))
    mkdirSync(path.join(dir, 'web'), {recursive: true, mode: 0o700})
    const file = path.join(dir, 'web', `${encodeURIComponent('web:127.0.0.1:8080')}.json`)
    symlinkSync(target, file)

    const registry = open(dir)
    const handle = await registry.register(
      {service: 'web', address: '127.0.0.1', port: 8080},
      {ttlMs: 3000, refreshMs: 50},
    )
    expect(lstatSync(file).isFile()).toBe(true)
    expect(mode(file)).toBe(0o600)
    // planted again while the owner heartbeats: the heartbeat puts the instance back, the target stays as it was
    rmSync(file)
    symlinkSync(target, file)
    const deadline = Date.now() + 3000
    while (lstatSync(file).isSymbolicLink() && Date.now() < deadline) await sleep(20)
    expect(lstatSync(file).isFile()).toBe(true)
    expect(await registry.listInstances('web')).toEqual([handle.instance])
    expect(readFileSync(target, 'utf8')).toBe('do not touch\n')
    expect(statSync(target).mtimeMs).toBe(0)
  })
})

/** Plants one of each kind of foreign entry in the web service's directory; returns their paths. */
function plant(dir: string): string[] {
  const web = path.join(dir, 'web')
  const planted: Record<string, string | Buffer> = {
    'not-json.json': 'hello',
    'empty.json': '',
    'truncated.json': instanceFile({service: 'web', id: 'truncated'}).slice(0, 40),
    'array.json': '[1,2,3]',
    'null.json': 'null',
    'wrong-shape.json': JSON.stringify({instance: {service: 'web'}, ttlMs: 5}),
    'bad-port.json': instanceFile({service: 'web', id: 'bad-port', port: 70_000}),
    'bad-health.json': instanceFile({service: 'web', id: 'bad-health', health: 'great' as never}),
    'negative-ttl.json': instanceFile({service: 'web', id: 'negative-ttl'}, -1),
    'misplaced.json': instanceFile({service: 'web', id: 'other'}),
    'binary.json': Buffer.from([0xff, 0xfe, 0x00, 0x7b, 0x22]),
    'huge.json': Buffer.alloc(MAX_INSTANCE_FILE_BYTES + 10, 0x20),
  }
  const files: string[] = []
  for (const [name, content] of Object.entries(planted)) {
    const file = path.join(web, name)
    writeFileSync(file, content, {mode: 0o600})
    // long expired: the sweeper must still leave them alone
    utimesSync(file, new Date(0), new Date(0))
    files.push(file)
  }

  mkdirSync(path.join(web, 'dir.json'))
  files.push(path.join(web, 'dir.json'))
  execFileSync('mkfifo', [path.join(web, 'fifo.json')])
  files.push(path.join(web, 'fifo.json'))
  const theirs = path.join(web, 'theirs.json')
  writeFileSync(theirs, instanceFile({service: 'web', id: 'theirs'}), {mode: 0o644})
  chownSync(theirs, NOBODY, NOBODY)
  files.push(theirs)
  return files
}

describe('local registry and foreign files', () => {
  it('lists the real instances, warns once per foreign file, and removes none of them', async () => {
    const dir = path.join(root, 'registry')
    const registry = open(dir)
    const a = await registry.register({service: 'web', address: '127.0.0.1', port: 8080}, {refreshMs: 50})
    const b = await registry.register({service: 'web', address: '127.0.0.1', port: 8081}, {refreshMs: 50})
    const files = plant(dir)
    const expected = [a.instance, b.instance].sort((x, y) => x.id.localeCompare(y.id))

    for (let i = 0; i < 3; i++) {
      expect(await registry.listInstances('web')).toEqual(expected)
      expect(await registry.listServices()).toEqual([{name: 'web', instances: 2, passing: 2}])
    }

    expect(logs).toHaveLength(files.length)
    for (const file of files) expect(logs.filter((l) => l.startsWith(`skipping ${file}: `))).toHaveLength(1)
    expect(logs.find((l) => l.includes('theirs.json'))).toMatch(/belongs to uid 65534/)
    expect(logs.find((l) => l.includes('misplaced.json'))).toMatch(/belongs in another file/)
    for (const file of files) expect(existsSync(file)).toBe(true)

    // the owner keeps heartbeating beside them
    const beat = path.join(dir, OWNERS_DIR, ownerFileName(currentOwner()))
    const before = statSync(beat).mtimeMs
    await sleep(200)
    expect(statSync(beat).mtimeMs).toBeGreaterThan(before)
  })

  it('sweeps svc’s own expired instance on a write, and only that; a read removes nothing', async () => {
    const dir = path.join(root, 'registry')
    const registry = open(dir)
    await registry.register({service: 'web', address: '127.0.0.1', port: 8080})
    const expired = registry.instancePath('web', 'gone')
    writeFileSync(expired, instanceFile({service: 'web', id: 'gone'}, 1000), {mode: 0o600})
    utimesSync(expired, new Date(0), new Date(0))
    const files = plant(dir)
    expect(await registry.listInstances('web')).toHaveLength(1)
    expect(existsSync(expired)).toBe(true)
    await registry.register({service: 'web', address: '127.0.0.1', port: 8081})
    expect(await registry.listInstances('web')).toHaveLength(2)
    expect(existsSync(expired)).toBe(false)
    for (const file of files) expect(existsSync(file)).toBe(true)
  })

  it('skips directories that are not service names instead of failing the listing', async () => {
    const dir = path.join(root, 'registry')
    const registry = open(dir)
    await registry.register({service: 'web', address: '127.0.0.1', port: 8080})
    mkdirSync(path.join(dir, 'has space'))
    mkdirSync(path.join(dir, 'ünï'))
    writeFileSync(path.join(dir, 'stray.json'), '{}')
    expect(await registry.listServices()).toEqual([{name: 'web', instances: 1, passing: 1}])
    expect(await registry.listServices()).toHaveLength(1)
    expect(logs.sort()).toEqual([
      `skipping ${path.join(dir, 'has space')}: its name is not a valid service name`,
      `skipping ${path.join(dir, 'ünï')}: its name is not a valid service name`,
    ])
  })

  it('watches past foreign files: the snapshot holds the real instances, and later ones arrive', async () => {
    const dir = path.join(root, 'registry')
    const registry = open(dir)
    const a = await registry.register({service: 'web', address: '127.0.0.1', port: 8080})
    const files = plant(dir)
    const controller = new AbortController()
    const events: WatchEvent[] = []
    const iterator = registry.watch(undefined, {signal: controller.signal})[Symbol.asyncIterator]()
    const next = async (): Promise<WatchEvent> => {
      const result = await Promise.race([
        iterator.next(),
        sleep(5000).then(() => {
          throw new Error('no watch event within 5 s')
        }),
      ])
      if (result.done) throw new Error('the watch ended')
      events.push(result.value)
      return result.value
    }

    let event = await next()
    while (event.type === 'status') event = await next()
    expect(event).toEqual({type: 'snapshot', instances: [a.instance]})
    writeFileSync(path.join(dir, 'web', 'more-garbage.json'), '{"instance":')
    const b = await registry.register({service: 'web', address: '127.0.0.1', port: 8081})
    event = await next()
    while (event.type === 'status') event = await next()
    expect(event).toEqual({type: 'added', instance: b.instance})
    controller.abort()
    for (const file of files) expect(logs.filter((l) => l.startsWith(`skipping ${file}: `))).toHaveLength(1)
  })
})
