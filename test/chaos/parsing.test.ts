import {mkdirSync, mkdtempSync, symlinkSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {describe, expect, it} from 'vitest'

import {agreedLeader, type ObservedMember, parseZxid, zkMemberFromSrvr} from '../../src/lib/chaos/members.js'
import {establishedConnections, listensFor, parseProcNetTcp, TCP_LISTEN} from '../../src/lib/procnet.js'
import {summarizeWrites, type WriteRecord} from '../../src/lib/chaos/writes.js'

const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:B009 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1550805 1 00000000062d7fe5 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 20417 1 0000000000000000 100 0 0 10 0
   2: 0100007F:B009 0100007F:D2C4 01 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000000000000 20 4 30 10 -1
`

const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31337 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF00000100007F:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
`

describe('/proc/net/tcp parsing', () => {
  it('reads addresses (host byte order), ports, peers, states and inodes', () => {
    const none = {remoteAddress: '0.0.0.0', remotePort: 0}
    expect(parseProcNetTcp(TCP)).toEqual([
      {address: '127.0.0.1', port: 45_065, ...none, state: TCP_LISTEN, inode: 1_550_805},
      {address: '0.0.0.0', port: 22, ...none, state: TCP_LISTEN, inode: 20_417},
      {address: '127.0.0.1', port: 45_065, remoteAddress: '127.0.0.1', remotePort: 53_956, state: 1, inode: 0},
    ])
  })

  it("lists a process's established connections only, through its own fd table", () => {
    const root = mkdtempSync(path.join(tmpdir(), 'svc-proc-'))
    mkdirSync(path.join(root, '42/fd'), {recursive: true})
    mkdirSync(path.join(root, 'net'))
    writeFileSync(path.join(root, 'net/tcp'), TCP.replace(/ 0 1 0000000000000000 20 4/, ' 99 1 0000000000000000 20 4'))
    symlinkSync('socket:[99]', path.join(root, '42/fd/3'))
    symlinkSync('socket:[1550805]', path.join(root, '42/fd/4'))
    expect(establishedConnections(42, root).map((s) => [s.remotePort, s.inode])).toEqual([[53_956, 99]])
    expect(establishedConnections(43, root)).toEqual([])
  })

  it('reads IPv6, the wildcard and IPv4-mapped addresses', () => {
    expect(parseProcNetTcp(TCP6).map((s) => [s.address, s.port, s.inode])).toEqual([
      ['::1', 8080, 31_337],
      ['::', 80, 4242],
      ['::ffff:127.0.0.1', 3000, 777],
    ])
  })

  it('matches listeners by port and by address, wildcards included, never connections', () => {
    const [loopback, wildcard, established] = parseProcNetTcp(TCP)
    expect(listensFor(loopback!, '127.0.0.1', 45_065)).toBe(true)
    expect(listensFor(loopback!, '127.0.0.2', 45_065)).toBe(false)
    expect(listensFor(loopback!, '127.0.0.1', 45_066)).toBe(false)
    expect(listensFor(wildcard!, '10.1.2.3', 22)).toBe(true)
    expect(listensFor(established!, '127.0.0.1', 45_065)).toBe(false)
    const [v6loop, , mapped] = parseProcNetTcp(TCP6)
    expect(listensFor(v6loop!, '[::1]', 8080)).toBe(true)
    expect(listensFor(mapped!, '127.0.0.1', 3000)).toBe(true)
  })

  it('skips lines it cannot read', () => {
    expect(parseProcNetTcp('header\n\n  garbage line\n')).toEqual([])
  })
})

const SRVR_LEADER = `Zookeeper version: 3.8.0-debian--1, built on 2023-01-01 00:00 UTC
Latency min/avg/max: 0/0.5/7
Received: 120
Sent: 119
Connections: 2
Outstanding: 0
Zxid: 0x30000001a
Mode: leader
Node count: 12
Proposal sizes last/min/max: 48/32/400
`

describe('ZooKeeper srvr', () => {
  it('reads the mode and the zxid', () => {
    const member = zkMemberFromSrvr({host: '127.0.0.1', port: 2181}, SRVR_LEADER)
    expect(member).toMatchObject({address: '127.0.0.1:2181', up: true, role: 'leader', logIndex: 0x3_00_00_00_1an})
    expect(parseZxid('Zxid: 0xff\n')).toBe(255n)
    expect(parseZxid('Mode: follower\n')).toBeUndefined()
  })

  it('says when the member does not serve or refuses srvr', () => {
    expect(
      zkMemberFromSrvr({host: '127.0.0.1', port: 2181}, 'This ZooKeeper instance is not currently serving requests\n'),
    ).toMatchObject({up: false, role: 'unknown'})
    expect(
      zkMemberFromSrvr({host: '127.0.0.1', port: 2181}, 'srvr is not executed because it is not in the whitelist.\n')
        .detail,
    ).toMatch(/whitelist/)
  })
})

const member = (address: string, over: Partial<ObservedMember>): ObservedMember => {
  const [host, port] = address.split(':')
  return {host: host!, port: Number(port), address, name: address, up: true, role: 'follower', ...over}
}

describe('leader agreement', () => {
  it('needs one leader that a majority follows', () => {
    const a = member('h:1', {role: 'leader', selfId: 'a', leaderId: 'a'})
    const b = member('h:2', {selfId: 'b', leaderId: 'a'})
    const c = member('h:3', {up: false, role: 'unknown'})
    expect(agreedLeader([a, b, c])).toBe(a)
    // a follower that names another leader does not count
    expect(agreedLeader([a, member('h:2', {selfId: 'b', leaderId: 'x'}), c])).toBeUndefined()
    // two leaders: none agreed
    expect(agreedLeader([a, member('h:2', {role: 'leader', selfId: 'b', leaderId: 'b'}), c])).toBeUndefined()
    // ZooKeeper followers name no leader: Mode suffices
    expect(
      agreedLeader([member('z:1', {role: 'leader'}), member('z:2', {}), member('z:3', {up: false})])?.address,
    ).toBe('z:1')
    expect(
      agreedLeader([member('z:1', {role: 'leader'}), member('z:2', {up: false}), member('z:3', {up: false})]),
    ).toBeUndefined()
  })
})

const rec = (seq: number, start: number, ok: boolean): WriteRecord => ({seq, start, end: start + 10, ok})

describe('write summary', () => {
  it('counts acknowledged writes missing from the read-back, and the longest gap between acknowledgements', () => {
    const records = [
      rec(1, 0, true),
      rec(2, 50, true),
      rec(3, 100, false),
      rec(4, 600, false),
      rec(5, 1100, true),
      rec(6, 1150, true),
    ]
    const summary = summarizeWrites(records, new Set([1, 2, 5]), 80, 50)
    expect(summary).toMatchObject({
      attempted: 6,
      acknowledged: 4,
      failed: 2,
      ackedBeforeFault: 2,
      lost: 1,
      lostSeqs: [6],
      unavailableMs: 1050,
      firstAckAfterFaultMs: 1030,
    })
  })
})
