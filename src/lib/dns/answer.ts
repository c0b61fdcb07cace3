/* eslint-disable no-bitwise -- DNS header flags are bit fields */
import type {Answer, DecodedPacket, Packet, Question} from 'dns-packet'
import {isIP} from 'node:net'

import type {ServiceInstance} from '../registry/types.js'
import {hexOfAddress, parseQueryName, type QueryName} from './names.js'
import type {HealthPolicy, Zone} from './zone.js'

export interface AnswerOptions {
  /** Canonical served domain (names.ts normaliseDomain), e.g. `consul`. */
  domain: string
  /** The datacenter label names may carry, as Consul's do (`web.service.dc1.consul`); SRV targets carry it. */
  datacenter: string
  /** TTL of every answer record, in seconds (Consul's default: 0). */
  ttl: number
  /** The negative-caching TTL: the SOA's minimum and its own TTL in negative answers. */
  negativeTtl: number
  policy: HealthPolicy
  /** Whether names outside the domain are forwarded (sets RA). */
  recursion: boolean
}

/** What to do with a query: answer it, or forward it to the recursor (a name outside the domain). */
export type Outcome = {kind: 'answer'; packet: Packet} | {kind: 'outside'}

export const RCODE = {NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5} as const
const FLAG_AA = 1 << 10
const FLAG_RD = 1 << 8
const FLAG_RA = 1 << 7
const OPCODE_MASK = 0xf << 11

/** Answers one query from the zone alone. */
export function answerQuery(query: DecodedPacket, zone: Zone, opts: AnswerOptions): Outcome {
  const question = query.questions?.[0]
  if ((query.flags ?? 0) & OPCODE_MASK) return {kind: 'answer', packet: reply(query, opts, RCODE.NOTIMP)}
  if (!question || query.questions!.length !== 1) return {kind: 'answer', packet: reply(query, opts, RCODE.FORMERR)}
  const name = parseQueryName(question.name, opts.domain, opts.datacenter)
  if (name.kind === 'outside') return {kind: 'outside'}
  const records = recordsFor(resolveName(name, zone), question, zone, opts)
  if (records === undefined) return {kind: 'answer', packet: negative(query, opts, RCODE.NXDOMAIN)}
  if (records.answers.length === 0) return {kind: 'answer', packet: negative(query, opts, RCODE.NOERROR)}
  const packet = reply(query, opts, RCODE.NOERROR)
  packet.answers = records.answers
  packet.additionals = [...records.additionals, ...(packet.additionals ?? [])]
  return {kind: 'answer', packet}
}

/** A header-only answer with this rcode (SERVFAIL when the recursor fails, REFUSED without one). */
export function reply(query: DecodedPacket, opts: Pick<AnswerOptions, 'recursion'>, rcode: number): Packet {
  const flags = FLAG_AA | ((query.flags ?? 0) & FLAG_RD) | (opts.recursion ? FLAG_RA : 0) | rcode
  const opt: Answer = {
    type: 'OPT',
    name: '.',
    udpPayloadSize: 4096,
    extendedRcode: 0,
    ednsVersion: 0,
    flags: 0,
    // eslint-disable-next-line camelcase -- dns-packet's field name
    flag_do: false,
    options: [],
  }
  const additionals = hasEdns(query) ? [opt] : []
  return {id: query.id, type: 'response', flags, questions: query.questions, answers: [], authorities: [], additionals}
}

/** The UDP size the client offered with EDNS (RFC 6891), at least 512. */
export function udpLimit(query: DecodedPacket): number {
  const opt = query.additionals?.find((a) => a.type === 'OPT')
  const size = opt && 'udpPayloadSize' in opt ? opt.udpPayloadSize : 512
  return Math.max(512, Math.min(size, 65_535))
}

type Resolved = {kind: 'service'; service: string; tag?: string} | {kind: 'addr'; address: string} | {kind: 'apex'}

/** Tells `<tag>.<service>` from a dotted service name by what the zone holds; undefined: no such name. */
function resolveName(name: QueryName, zone: Zone): Resolved | undefined {
  switch (name.kind) {
    case 'service':
    case 'addr':
    case 'apex': {
      return name
    }

    case 'service-or-tag': {
      const whole = name.labels.join('.')
      if (zone.has(whole) || name.labels.length === 1) return {kind: 'service', service: whole}
      return {kind: 'service', service: name.labels.slice(1).join('.'), tag: name.labels[0]}
    }

    default: {
      return undefined
    }
  }
}

/** The records of a name for a question; undefined when the name does not exist (NXDOMAIN). */
function recordsFor(
  name: Resolved | undefined,
  question: Question,
  zone: Zone,
  opts: AnswerOptions,
): {answers: Answer[]; additionals: Answer[]} | undefined {
  if (name === undefined) return undefined
  const none = {answers: [], additionals: []}
  if (name.kind === 'apex') return question.type === 'SOA' ? {answers: [soa(opts)], additionals: []} : none
  if (name.kind === 'addr') {
    const family = isIP(name.address) === 4 ? 'A' : 'AAAA'
    const wanted = question.type === family || isAny(question)
    return wanted ? {answers: [address(question.name, name.address, opts.ttl)], additionals: []} : none
  }

  // Consul answers NXDOMAIN for a service that has no healthy instance, as for an unknown one
  const instances = zone.has(name.service) ? zone.instances(name.service, opts.policy, name.tag) : []
  if (instances.length === 0) return undefined
  shuffle(instances)
  if (question.type === 'SRV') return srvRecords(question.name, instances, opts)
  const answers: Answer[] = []
  const seen = new Set<string>()
  for (const instance of instances) {
    // one A record per address, as Consul does when one host runs a service on several ports
    if (seen.has(instance.address)) continue
    seen.add(instance.address)
    const family = isIP(instance.address)
    const type = family === 4 ? 'A' : family === 6 ? 'AAAA' : 'CNAME'
    if (
      question.type === type ||
      isAny(question) ||
      (type === 'CNAME' && (question.type === 'A' || question.type === 'AAAA'))
    ) {
      answers.push(address(question.name, instance.address, opts.ttl))
    }
  }

  return {answers, additionals: []}
}

/** SRV records in Consul's shape: priority 1, weight 1, target `<hex>.addr.<dc>.<domain>` with its address beside. */
function srvRecords(
  name: string,
  instances: ServiceInstance[],
  opts: AnswerOptions,
): {answers: Answer[]; additionals: Answer[]} {
  const answers: Answer[] = []
  const additionals: Answer[] = []
  const targets = new Set<string>()
  for (const instance of instances) {
    const hex = hexOfAddress(instance.address)
    const target = hex === undefined ? instance.address : `${hex}.addr.${opts.datacenter}.${opts.domain}`
    answers.push({type: 'SRV', name, ttl: opts.ttl, data: {priority: 1, weight: 1, port: instance.port, target}})
    if (hex !== undefined && !targets.has(target)) additionals.push(address(target, instance.address, opts.ttl))
    targets.add(target)
  }

  return {answers, additionals}
}

function address(name: string, value: string, ttl: number): Answer {
  const family = isIP(value)
  if (family === 4) return {type: 'A', name, ttl, data: value}
  if (family === 6) return {type: 'AAAA', name, ttl, data: value}
  return {type: 'CNAME', name, ttl, data: value}
}

function negative(query: DecodedPacket, opts: AnswerOptions, rcode: number): Packet {
  const packet = reply(query, opts, rcode)
  packet.authorities = [soa(opts)]
  return packet
}

/** The zone's SOA, as Consul writes it; its minimum (and its TTL here) is the negative-caching TTL (RFC 2308). */
function soa(opts: AnswerOptions): Answer {
  return {
    type: 'SOA',
    name: opts.domain,
    ttl: opts.negativeTtl,
    data: {
      mname: `ns.${opts.domain}`,
      rname: `hostmaster.${opts.domain}`,
      serial: Math.floor(Date.now() / 1000) % 2 ** 32,
      refresh: 3600,
      retry: 600,
      expire: 86_400,
      minimum: opts.negativeTtl,
    },
  }
}

/** dns-packet's types leave out ANY (type 255), which it decodes as the string "ANY". */
function isAny(question: Question): boolean {
  return (question.type as string) === 'ANY'
}

function hasEdns(query: DecodedPacket): boolean {
  return query.additionals?.some((a) => a.type === 'OPT') ?? false
}

/** Fisher-Yates in place: Consul shuffles its answers so that clients taking the first spread the load. */
function shuffle<T>(items: T[]): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[items[i], items[j]] = [items[j]!, items[i]!]
  }
}
