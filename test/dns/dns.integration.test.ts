import type {ChildProcess} from 'node:child_process'
import {execFile} from 'node:child_process'
import {createSocket, type Socket} from 'node:dgram'
import {promisify} from 'node:util'

import dnsPacket from 'dns-packet'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {openRegistry} from '../../src/lib/registry/index.js'
import type {InstanceInput, Registry, RegistrationHandle} from '../../src/lib/registry/types.js'
import {testBackends, uniqueService} from '../helpers/backends.js'
import {eventually, runCli, spawnCli, waitForExit, waitForOutput} from '../helpers/cli.js'

const run = promisify(execFile)
const BIG = 100

interface Dig {
  status: string
  flags: string[]
  answers: string[]
  authority: string[]
  additional: string[]
}

/** The real dig, bounded: one try, 2 s. */
async function dig(port: number, name: string, type = 'A', ...options: string[]): Promise<Dig> {
  const args = ['@127.0.0.1', '-p', String(port), name, type, '+tries=1', '+time=2', ...options]
  const {stdout} = await run('/usr/bin/dig', args, {timeout: 10_000})
  const section = (title: string): string[] => {
    const start = stdout.indexOf(`;; ${title} SECTION:\n`)
    if (start === -1) return []
    const body = stdout.slice(start).split('\n\n')[0]!.split('\n').slice(1)
    return body.map((line) => line.split(/\s+/).filter(Boolean).join(' '))
  }

  return {
    status: /status: (\w+)/.exec(stdout)?.[1] ?? 'none',
    flags: /;; flags: ([^;]*);/.exec(stdout)?.[1]?.trim().split(' ') ?? [],
    answers: section('ANSWER'),
    authority: section('AUTHORITY'),
    additional: section('ADDITIONAL'),
  }
}

const rdata = (records: string[], type: string): string[] =>
  records.filter((r) => r.split(' ')[3] === type).map((r) => r.split(' ').slice(4).join(' '))

function bound(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    socket.bind(0, '127.0.0.1', resolve)
  })
}

/** A small resolver for the recursor test: example.test names answer 192.0.2.7; silent.example.test is never answered. */
async function startRecursor(): Promise<{socket: Socket; port: number}> {
  const socket = createSocket('udp4')
  socket.on('message', (raw, peer) => {
    const query = dnsPacket.decode(raw)
    const question = query.questions?.[0]
    if (!question || question.name.startsWith('silent.')) return
    const answer = dnsPacket.encode({
      id: query.id,
      type: 'response',
      flags: dnsPacket.RECURSION_AVAILABLE,
      questions: query.questions,
      answers: [{type: 'A', name: question.name, ttl: 30, data: '192.0.2.7'}],
    })
    socket.send(answer, peer.port, peer.address)
  })
  await bound(socket)
  return {socket, port: socket.address().port}
}

describe.each(testBackends())('svc dns on $name', (backend) => {
  const web = uniqueService('web')
  const big = uniqueService('big')
  let registry: Registry
  let dns: ChildProcess | undefined
  let port = 0
  const handles: RegistrationHandle[] = []
  let recursor: {socket: Socket; port: number}
  const register = async (input: InstanceInput): Promise<RegistrationHandle> => {
    const handle = await registry.register(input)
    handles.push(handle)
    return handle
  }

  beforeAll(async () => {
    recursor = await startRecursor()
    registry = await openRegistry(backend.uri)
    await register({service: web, address: '127.0.1.1', port: 8001, tags: ['blue']})
    await register({service: web, address: '127.0.1.2', port: 8002, tags: ['green']})
    await register({service: web, address: '127.0.1.3', port: 8003, tags: ['blue'], health: 'critical'})
    for (let start = 1; start <= BIG; start += 50) {
      const batch = Array.from({length: 50}, (_, i) => start + i)
      await Promise.all(batch.map((n) => register({service: big, address: `127.0.2.${n}`, port: 9000})))
    }

    dns = spawnCli([
      'dns',
      '--listen',
      '127.0.0.1:0',
      '-b',
      backend.uri,
      '--recursor',
      `127.0.0.1:${recursor.port}`,
      '--recursor-timeout',
      '500ms',
    ])
    // start-up is the process, then the first snapshot of every service: seconds on a loaded machine
    const line = await waitForOutput(dns, /svc dns listening on/, 40_000)
    port = Number(/127\.0\.0\.1:(\d+)/.exec(line)?.[1])
    // the snapshot was taken at start; wait until it holds all of them (a watch may lag a write on another member)
    await eventually(async () => (await dig(port, `${big}.service.consul`, 'A', '+tcp')).answers.length === BIG, 30_000)
  })

  afterAll(async () => {
    dns?.kill('SIGTERM')
    if (dns) await waitForExit(dns, 10_000).catch(() => dns?.kill('SIGKILL'))
    await Promise.allSettled(handles.map((h) => h.close()))
    await registry?.close()
    recursor?.socket.close()
  })

  it('answers A for the healthy instances only, and filters by tag', async () => {
    const all = await dig(port, `${web}.service.consul`)
    expect(all.status).toBe('NOERROR')
    expect(all.flags).toContain('aa')
    expect(rdata(all.answers, 'A').sort()).toEqual(['127.0.1.1', '127.0.1.2'])
    const blue = await dig(port, `blue.${web}.service.consul`)
    expect(rdata(blue.answers, 'A')).toEqual(['127.0.1.1'])
  })

  it('answers SRV in both name forms, with the target addresses in the additional section', async () => {
    for (const name of [`${web}.service.consul`, `_${web}._tcp.service.consul`, `${web}.service.dc1.consul`]) {
      const srv = await dig(port, name, 'SRV')
      expect(rdata(srv.answers, 'SRV').sort()).toEqual([
        '1 1 8001 7f000101.addr.dc1.consul.',
        '1 1 8002 7f000102.addr.dc1.consul.',
      ])
      expect(srv.additional).toEqual(
        expect.arrayContaining([
          '7f000101.addr.dc1.consul. 0 IN A 127.0.1.1',
          '7f000102.addr.dc1.consul. 0 IN A 127.0.1.2',
        ]),
      )
    }

    const green = await dig(port, `_${web}._green.service.consul`, 'SRV')
    expect(rdata(green.answers, 'SRV')).toEqual(['1 1 8002 7f000102.addr.dc1.consul.'])
  })

  it('answers NXDOMAIN with the SOA for unknown names, and an empty NOERROR for a known name of another type', async () => {
    const unknown = await dig(port, `nothing-${web}.service.consul`)
    expect(unknown.status).toBe('NXDOMAIN')
    expect(unknown.answers).toEqual([])
    expect(rdata(unknown.authority, 'SOA')).toEqual([
      expect.stringMatching(/^ns\.consul\. hostmaster\.consul\. \d+ 3600 600 86400 0$/),
    ])
    const untagged = await dig(port, `red.${web}.service.consul`)
    expect(untagged.status).toBe('NXDOMAIN')
    const txt = await dig(port, `${web}.service.consul`, 'TXT')
    expect(txt.status).toBe('NOERROR')
    expect(txt.answers).toEqual([])
    expect(rdata(txt.authority, 'SOA')).toHaveLength(1)
  })

  it('sees a change in the next query after the watch delivers it', async () => {
    const added = await register({service: web, address: '127.0.1.4', port: 8004})
    await eventually(
      async () => rdata((await dig(port, `${web}.service.consul`)).answers, 'A').includes('127.0.1.4'),
      5000,
    )
    await added.close()
    await eventually(
      async () => !rdata((await dig(port, `${web}.service.consul`)).answers, 'A').includes('127.0.1.4'),
      5000,
    )
  })

  it(`truncates a ${BIG}-instance answer over UDP (TC set) and answers it whole over TCP`, async () => {
    const udp = await dig(port, `${big}.service.consul`, 'A', '+notcp', '+ignore', '+noedns')
    expect(udp.flags).toContain('tc')
    expect(udp.answers.length).toBeGreaterThan(0)
    expect(udp.answers.length).toBeLessThan(BIG)
    const tcp = await dig(port, `${big}.service.consul`, 'A', '+tcp')
    expect(tcp.flags).not.toContain('tc')
    expect(new Set(rdata(tcp.answers, 'A')).size).toBe(BIG)
    // answers are shuffled, as Consul's are: the same order twice running would be a 1 in 100! event
    const again = await dig(port, `${big}.service.consul`, 'A', '+tcp')
    expect(rdata(again.answers, 'A').join(',')).not.toBe(rdata(tcp.answers, 'A').join(','))
  })

  it('forwards other names to the recursor, and answers SERVFAIL when it does not answer', async () => {
    const forwarded = await dig(port, 'www.example.test')
    expect(forwarded.status).toBe('NOERROR')
    expect(rdata(forwarded.answers, 'A')).toEqual(['192.0.2.7'])
    const silent = await dig(port, 'silent.example.test')
    expect(silent.status).toBe('SERVFAIL')
  })
})

describe('svc dns --listen', () => {
  it('refuses an address in use with one line and exit 1', async () => {
    const taken = createSocket('udp4')
    await bound(taken)
    try {
      const result = await runCli(
        ['dns', '--listen', `127.0.0.1:${taken.address().port}`, '-b', testBackends(['local'])[0]!.uri],
        {timeoutMs: 40_000},
      )
      expect(result.code).toBe(1)
      expect(result.stderr.trim().split('\n')).toEqual([expect.stringMatching(/address is already in use/)])
    } finally {
      taken.close()
    }
  })
})
