import http from 'node:http'
import net from 'node:net'
import {setTimeout as sleep} from 'node:timers/promises'

import type {ClusterKind} from '../../src/lib/cluster/types.js'

/**
 * The test's own view of who leads, asked of each member directly (ZooKeeper `srvr`, etcd's maintenance status,
 * Consul's status and agent endpoints), written apart from svc's code so it can check svc's report.
 */

function srvr(port: number): Promise<string> {
  return new Promise((resolve) => {
    let text = ''
    const socket = net.connect({host: '127.0.0.1', port})
    socket.setTimeout(400, () => socket.destroy())
    socket.on('connect', () => socket.end('srvr'))
    socket.on('data', (d: Buffer) => {
      text += d.toString()
    })
    socket.on('error', () => resolve(''))
    socket.on('close', () => resolve(text))
  })
}

function request(port: number, method: string, path: string, body?: string): Promise<unknown> {
  return new Promise((resolve) => {
    const req = http.request({host: '127.0.0.1', port, method, path, agent: false, timeout: 400}, (res) => {
      let text = ''
      res.on('data', (d: Buffer) => {
        text += d.toString()
      })
      res.on('end', () => {
        try {
          resolve(res.statusCode === 200 ? JSON.parse(text) : undefined)
        } catch {
          resolve(undefined)
        }
      })
    })
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(undefined))
    req.end(body)
  })
}

type Said = {self?: string; leader?: string; mode?: string}

async function ask(kind: ClusterKind, port: number): Promise<Said | undefined> {
  switch (kind) {
    case 'zk': {
      const mode = /Mode: (\w+)/.exec(await srvr(port))?.[1]
      return mode ? {mode} : undefined
    }

    case 'etcd': {
      const status = (await request(port, 'POST', '/v3/maintenance/status', '{}')) as
        {header?: {member_id?: string}; leader?: string} | undefined
      if (!status) return undefined
      return {self: status.header?.member_id, leader: status.leader === '0' ? undefined : status.leader}
    }

    case 'consul': {
      const [self, leader] = (await Promise.all([
        request(port, 'GET', '/v1/agent/self'),
        request(port, 'GET', '/v1/status/leader'),
      ])) as [{Member?: {Addr?: string; Tags?: {port?: string}}} | undefined, string | undefined]
      if (!self) return undefined
      return {self: `${self.Member?.Addr}:${self.Member?.Tags?.port}`, leader: leader || undefined}
    }
  }
}

/** The client port of the member that leads with at least one other member agreeing, if any. */
export async function leaderPort(kind: ClusterKind, ports: readonly number[]): Promise<number | undefined> {
  const said = await Promise.all(ports.map((p) => ask(kind, p)))
  if (kind === 'zk') {
    const leaders = ports.filter((_, i) => said[i]?.mode === 'leader')
    const followers = said.filter((s) => s?.mode === 'follower').length
    return leaders.length === 1 && followers >= 1 ? leaders[0] : undefined
  }

  for (const [i, s] of said.entries()) {
    if (!s?.self || s.leader !== s.self) continue
    if (said.some((o, j) => j !== i && o?.leader === s.self)) return ports[i]
  }

  return undefined
}

/** Polls every 50 ms in the background and records when each new leader was first seen. */
export class LeaderTimeline {
  readonly seen: Array<{at: number; port: number}> = []
  private running = true
  private readonly loop: Promise<void>

  constructor(
    private readonly kind: ClusterKind,
    private readonly ports: readonly number[],
  ) {
    this.loop = this.run()
  }

  private async run(): Promise<void> {
    while (this.running) {
      const port = await leaderPort(this.kind, this.ports)
      const at = Date.now()
      if (port !== undefined && this.seen.at(-1)?.port !== port) this.seen.push({at, port})
      await sleep(50)
    }
  }

  /** The first time a leader other than `port` was seen after `after`. */
  firstOtherThan(port: number, after: number): {at: number; port: number} | undefined {
    return this.seen.find((s) => s.at >= after && s.port !== port)
  }

  async stop(): Promise<void> {
    this.running = false
    await this.loop
  }
}
