import dnsPacket from 'dns-packet'
import {describe, expect, it} from 'vitest'

import {type AnswerOptions, answerQuery} from '../../src/lib/dns/answer.js'
import {hexOfAddress, parseQueryName} from '../../src/lib/dns/names.js'
import {Zone} from '../../src/lib/dns/zone.js'
import type {Health, ServiceInstance} from '../../src/lib/registry/types.js'

const OPTS: AnswerOptions = {
  domain: 'consul',
  datacenter: 'dc1',
  ttl: 0,
  negativeTtl: 30,
  policy: 'not-critical',
  recursion: false,
}

const instance = (
  service: string,
  address: string,
  health: Health = 'passing',
  tags: string[] = [],
): ServiceInstance => ({
  service,
  id: `${service}:${address}`,
  address,
  port: 8080,
  tags,
  meta: {},
  health,
})

function ask(
  zone: Zone,
  name: string,
  type: dnsPacket.RecordType = 'A',
  opts: AnswerOptions = OPTS,
): dnsPacket.DecodedPacket {
  const query = dnsPacket.decode(dnsPacket.encode({type: 'query', id: 7, questions: [{type, name}]}))
  const outcome = answerQuery(query, zone, opts)
  if (outcome.kind !== 'answer') throw new Error(`${name} is outside the domain`)
  return dnsPacket.decode(dnsPacket.encode(outcome.packet))
}

const data = (packet: dnsPacket.DecodedPacket): unknown[] =>
  (packet.answers ?? []).map((a) => ('data' in a ? a.data : undefined)).sort()

describe('names', () => {
  it('spells addresses in hex as Consul does, both ways', () => {
    expect(hexOfAddress('127.0.1.2')).toBe('7f000102')
    expect(hexOfAddress('::1')).toBe('00000000000000000000000000000001')
    expect(parseQueryName('7f000102.addr.dc1.consul.', 'consul', 'dc1')).toEqual({kind: 'addr', address: '127.0.1.2'})
    expect(parseQueryName('20010db8000000000000000000000001.addr.consul', 'consul', 'dc1')).toEqual({
      kind: 'addr',
      address: '2001:db8::1',
    })
  })

  it('reads the RFC 2782 form, the datacenter label, and names outside the domain', () => {
    expect(parseQueryName('_web._tcp.service.consul', 'consul', 'dc1')).toEqual({
      kind: 'service',
      service: 'web',
      tag: undefined,
    })
    expect(parseQueryName('_web._v2.service.dc1.consul', 'consul', 'dc1')).toEqual({
      kind: 'service',
      service: 'web',
      tag: 'v2',
    })
    expect(parseQueryName('web.service.dc2.consul', 'consul', 'dc1')).toEqual({kind: 'unknown'})
    expect(parseQueryName('example.com', 'consul', 'dc1')).toEqual({kind: 'outside'})
  })
})

describe('answers', () => {
  const zone = new Zone()
  zone.apply({
    type: 'snapshot',
    instances: [
      instance('web', '10.0.0.1', 'passing', ['v1']),
      instance('web', '10.0.0.2', 'warning'),
      instance('web', '10.0.0.3', 'unknown'),
      instance('web', '10.0.0.4', 'critical'),
      instance('api.v2', 'fd00::1'),
      instance('db', 'db.example.internal'),
      instance('down', '10.0.0.9', 'critical'),
    ],
  })

  it('answers passing, warning and unknown instances, and passing ones only with only-passing', () => {
    expect(data(ask(zone, 'web.service.consul'))).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3'])
    expect(data(ask(zone, 'WEB.service.consul', 'A', {...OPTS, policy: 'passing-only'}))).toEqual(['10.0.0.1'])
  })

  it('tells a tag from a dotted service name, answers AAAA, and a host name as a CNAME', () => {
    expect(data(ask(zone, 'v1.web.service.consul'))).toEqual(['10.0.0.1'])
    expect(data(ask(zone, 'api.v2.service.consul', 'AAAA'))).toEqual(['fd00::1'])
    expect(data(ask(zone, 'db.service.consul'))).toEqual(['db.example.internal'])
  })

  it('answers NXDOMAIN with the SOA (minimum: the negative TTL) for a service whose instances are all critical', () => {
    const packet = ask(zone, 'down.service.consul')
    // the rcode is the low 4 bits of the flags: 3 is NXDOMAIN
    expect((packet.flags ?? 0) % 16).toBe(3)
    const [soa] = packet.authorities ?? []
    expect(soa).toMatchObject({type: 'SOA', name: 'consul', ttl: 30, data: {mname: 'ns.consul', minimum: 30}})
  })

  it('updates in place: a change, then a removal', () => {
    const moving = new Zone()
    const before = instance('web', '10.0.0.1')
    moving.apply({type: 'snapshot', instances: [before]})
    moving.apply({type: 'changed', previous: before, instance: {...before, health: 'critical'}})
    expect(moving.instances('web', 'not-critical')).toEqual([])
    moving.apply({type: 'removed', instance: before})
    expect(moving.has('web')).toBe(false)
  })
})
