import {connect as netConnect, createServer, type Server, type Socket} from 'node:net'

/** `host:port` as the registry specs take it. */
export function hostPort(address: string): {host: string; port: number} {
  const colon = address.lastIndexOf(':')
  return {host: address.slice(0, colon), port: Number(address.slice(colon + 1))}
}

/**
 * A TCP proxy in front of one member: `stall` forwards nothing on open connections and answers nothing on new ones
 * (a partition), `cut` closes everything and refuses (a dead member), `heal` closes what was stalled and forwards.
 */
export class TcpProxy {
  private readonly server: Server
  private port = 0
  private mode: 'pass' | 'refuse' | 'stall' = 'pass'
  private readonly sockets = new Set<Socket>()
  private readonly clients = new Set<Socket>()

  constructor(private readonly target: string) {
    this.server = createServer((client) => this.accept(client))
  }

  get address(): string {
    return `127.0.0.1:${this.port}`
  }

  /** Client connections open through the proxy now: which member a client talks to. */
  get connections(): number {
    return this.clients.size
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => {
      this.server.listen(0, '127.0.0.1', resolve)
    })
    const address = this.server.address()
    this.port = typeof address === 'object' && address ? address.port : 0
    return this
  }

  stall(): void {
    this.mode = 'stall'
  }

  cut(): void {
    this.mode = 'refuse'
    this.dropAll()
  }

  heal(): void {
    this.dropAll()
    this.mode = 'pass'
  }

  async stop(): Promise<void> {
    this.dropAll()
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve())
    })
  }

  private accept(client: Socket): void {
    if (this.mode === 'refuse') {
      client.destroy()
      return
    }

    this.sockets.add(client)
    this.clients.add(client)
    const upstream = this.mode === 'pass' ? netConnect(hostPort(this.target)) : undefined
    if (upstream) this.sockets.add(upstream)
    client.on('data', (chunk) => {
      if (this.mode === 'pass') upstream?.write(chunk)
    })
    upstream?.on('data', (chunk) => {
      if (this.mode === 'pass') client.write(chunk)
    })
    const close = (): void => {
      client.destroy()
      upstream?.destroy()
      this.sockets.delete(client)
      this.clients.delete(client)
      if (upstream) this.sockets.delete(upstream)
    }

    client.on('close', close).on('error', close)
    upstream?.on('close', close).on('error', close)
  }

  private dropAll(): void {
    for (const socket of this.sockets) socket.destroy()
    this.sockets.clear()
    this.clients.clear()
  }
}
