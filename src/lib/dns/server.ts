/* eslint-disable no-bitwise -- DNS header flags are bit fields */
import dnsPacket, {type DecodedPacket} from 'dns-packet'
import {createSocket, type Socket} from 'node:dgram'
import {createServer, isIP, type Server, type Socket as TcpSocket} from 'node:net'

import {errorMessage, UserError} from '../errors.js'
import {listenError} from '../metrics/server.js'
import type {HostPort} from '../registry/spec.js'
import {type AnswerOptions, answerQuery, RCODE, reply, udpLimit} from './answer.js'
import {forwardQuery} from './forward.js'
import type {Zone} from './zone.js'

export interface DnsServerOptions extends AnswerOptions {
  recursor?: HostPort
  recursorTimeoutMs: number
  /** Idle TCP connections are closed after this long. */
  tcpIdleMs: number
  log(line: string): void
}

const FLAG_TC = 1 << 9
/** How many times a free UDP port is drawn when its TCP twin is taken (port 0 only). */
const PORT_ATTEMPTS = 5

/** One zone served on UDP and TCP at the same address. */
export class DnsServer {
  private udp?: Socket
  private tcp?: Server
  private readonly connections = new Set<TcpSocket>()

  constructor(
    private readonly zone: Zone,
    private readonly opts: DnsServerOptions,
  ) {}

  /** Binds UDP and TCP on host:port (port 0: the same free port on both); resolves with host:port. */
  async listen(host: string, port: number): Promise<{host: string; port: number}> {
    for (let attempt = 1; ; attempt++) {
      const udp = await this.bindUdp(host, port)
      const bound = udp.address().port
      try {
        this.tcp = await this.bindTcp(host, bound)
        this.udp = udp
        return {host, port: bound}
      } catch (error) {
        udp.close()
        if (port !== 0 || attempt >= PORT_ATTEMPTS) throw error
      }
    }
  }

  /** The answer to one query: a packet of ours, or the recursor's bytes; undefined when there is none to send. */
  async handle(raw: Buffer): Promise<Reply | undefined> {
    let query: DecodedPacket
    try {
      query = dnsPacket.decode(raw)
    } catch {
      // too broken to answer: no question to echo
      return raw.length >= 12 ? {raw: formErr(raw)} : undefined
    }

    if (query.type !== 'query') return undefined
    const outcome = answerQuery(query, this.zone, this.opts)
    if (outcome.kind === 'answer') return {packet: outcome.packet, limit: udpLimit(query)}
    if (this.opts.recursor === undefined) return {packet: reply(query, this.opts, RCODE.REFUSED), limit: 512}
    try {
      return {raw: await forwardQuery(raw, this.opts.recursor, this.opts.recursorTimeoutMs)}
    } catch (error) {
      this.opts.log(`recursor: ${errorMessage(error)}; answered SERVFAIL`)
      return {packet: reply(query, this.opts, RCODE.SERVFAIL), limit: 512}
    }
  }

  async close(): Promise<void> {
    for (const socket of this.connections) socket.destroy()
    await Promise.all([
      new Promise<void>((resolve) => {
        if (this.udp) this.udp.close(() => resolve())
        else resolve()
      }),
      new Promise<void>((resolve) => {
        if (this.tcp) this.tcp.close(() => resolve())
        else resolve()
      }),
    ])
  }

  private bindUdp(host: string, port: number): Promise<Socket> {
    const socket = createSocket({type: isIP(host) === 6 ? 'udp6' : 'udp4'})
    return new Promise((resolve, reject) => {
      socket.once('error', (error: NodeJS.ErrnoException) => {
        socket.close()
        reject(listenFailure(error, host, port))
      })
      socket.bind(port, host, () => {
        socket.removeAllListeners('error')
        socket.on('error', (error) => this.opts.log(`dns udp: ${errorMessage(error)}`))
        socket.on('message', (raw, peer) => {
          this.handle(raw).then(
            (answer) => answer && socket.send(udpBytes(answer), peer.port, peer.address),
            (error: unknown) => this.opts.log(`dns: ${errorMessage(error)}`),
          )
        })
        resolve(socket)
      })
    })
  }

  private bindTcp(host: string, port: number): Promise<Server> {
    const server = createServer((socket) => this.serveTcp(socket))
    return new Promise((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => reject(listenFailure(error, host, port)))
      server.listen(port, host, () => {
        server.removeAllListeners('error')
        resolve(server)
      })
    })
  }

  /** RFC 7766: queries framed by a two-byte length, answered in turn, on a connection closed when idle. */
  private serveTcp(socket: TcpSocket): void {
    this.connections.add(socket)
    socket.setTimeout(this.opts.tcpIdleMs, () => socket.destroy())
    socket.on('close', () => this.connections.delete(socket))
    socket.on('error', () => socket.destroy())
    let buffer = Buffer.alloc(0)
    let chain = Promise.resolve()
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk])
      while (buffer.length >= 2 && buffer.length >= 2 + buffer.readUInt16BE(0)) {
        const raw = buffer.subarray(2, 2 + buffer.readUInt16BE(0))
        buffer = buffer.subarray(2 + raw.length)
        chain = chain
          .then(() => this.handle(Buffer.from(raw)))
          .then((answer) => {
            if (answer && !socket.destroyed) socket.write(tcpBytes(answer))
          })
          .catch((error: unknown) => this.opts.log(`dns: ${errorMessage(error)}`))
      }
    })
  }
}

/** What answers a query: a packet of ours (with the UDP size the client offered), or bytes from the recursor. */
export type Reply = {packet: dnsPacket.Packet; limit: number} | {raw: Buffer}

function udpBytes(answer: Reply): Buffer {
  return 'raw' in answer ? answer.raw : encode(answer.packet, answer.limit)
}

/** TCP framing: a two-byte length before each message (dns-packet's streamEncode for ours). */
function tcpBytes(answer: Reply): Buffer {
  if (!('raw' in answer)) return dnsPacket.streamEncode(answer.packet)
  const length = Buffer.alloc(2)
  length.writeUInt16BE(answer.raw.length)
  return Buffer.concat([length, answer.raw])
}

/** Encodes within `limit` bytes: records are dropped from the end until it fits, and TC is set (RFC 2181 9). */
function encode(packet: dnsPacket.Packet, limit: number): Buffer {
  const full = dnsPacket.encode(packet)
  if (full.length <= limit) return full
  const answers = packet.answers ?? []
  const opt = (packet.additionals ?? []).filter((a) => a.type === 'OPT')
  let low = 0
  let high = answers.length
  // the most answers that fit beside the question and the OPT record
  while (low < high) {
    const mid = Math.ceil((low + high) / 2)
    const size = dnsPacket.encodingLength({
      ...packet,
      answers: answers.slice(0, mid),
      authorities: [],
      additionals: opt,
    })
    if (size <= limit) low = mid
    else high = mid - 1
  }

  const flags = (packet.flags ?? 0) | FLAG_TC
  return dnsPacket.encode({...packet, flags, answers: answers.slice(0, low), authorities: [], additionals: opt})
}

/** listenError's one line, as a runtime failure (exit 1): the flag was valid, the address was not free. */
function listenFailure(error: NodeJS.ErrnoException, host: string, port: number): Error {
  const failure = listenError(error, host, port, 'serve DNS', '--listen')
  return failure instanceof UserError ? new UserError(failure.message, failure.hint, 1) : failure
}

function formErr(raw: Buffer): Buffer {
  const header = Buffer.alloc(12)
  header.writeUInt16BE(raw.readUInt16BE(0), 0)
  header.writeUInt16BE((1 << 15) | RCODE.FORMERR, 2)
  return header
}
