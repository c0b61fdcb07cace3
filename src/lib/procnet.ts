import {readdirSync, readFileSync, readlinkSync} from 'node:fs'

/** One socket line of /proc/net/tcp or /proc/net/tcp6. */
export interface ProcSocket {
  address: string
  port: number
  /** The peer's address and port (0.0.0.0:0 for a listening socket). */
  remoteAddress: string
  remotePort: number
  /** The kernel's TCP state; 0x0A is LISTEN. */
  state: number
  inode: number
}

export const TCP_LISTEN = 0x0a
export const TCP_ESTABLISHED = 0x01

/** A hex IPv4 word as the kernel prints it: the address in host (little-endian) byte order. */
function ipv4(hex: string): string {
  const bytes = [6, 4, 2, 0].map((i) => Number.parseInt(hex.slice(i, i + 2), 16))
  return bytes.join('.')
}

/** 32 hex digits: four 32-bit words, each in host byte order. */
function ipv6(hex: string): string {
  const bytes: number[] = []
  for (let word = 0; word < 4; word++) {
    const w = hex.slice(word * 8, word * 8 + 8)
    for (const i of [6, 4, 2, 0]) bytes.push(Number.parseInt(w.slice(i, i + 2), 16))
  }

  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return `::ffff:${bytes.slice(12).join('.')}`
  }

  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] ?? 0) * 256 + (bytes[i + 1] ?? 0)).toString(16))
  return compressIpv6(groups)
}

function compressIpv6(groups: string[]): string {
  let bestStart = -1
  let bestLength = 0
  for (let i = 0; i < groups.length;) {
    if (groups[i] !== '0') {
      i++
      continue
    }

    let j = i
    while (j < groups.length && groups[j] === '0') j++
    if (j - i > bestLength) {
      bestStart = i
      bestLength = j - i
    }

    i = j
  }

  if (bestLength < 2) return groups.join(':')
  return `${groups.slice(0, bestStart).join(':')}::${groups.slice(bestStart + bestLength).join(':')}`
}

/** `0100007F:1F90` as the kernel prints an endpoint. */
function endpoint(field: string | undefined): {address: string; port: number} | undefined {
  const [addressHex, portHex] = (field ?? '').split(':')
  if (!addressHex || !portHex) return undefined
  if (addressHex.length === 8) return {address: ipv4(addressHex), port: Number.parseInt(portHex, 16)}
  if (addressHex.length === 32) return {address: ipv6(addressHex), port: Number.parseInt(portHex, 16)}
  return undefined
}

/** Parses the text of /proc/net/tcp or /proc/net/tcp6 (the header line is skipped). */
export function parseProcNetTcp(text: string): ProcSocket[] {
  const sockets: ProcSocket[] = []
  for (const line of text.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/)
    if (fields.length < 10) continue
    const local = endpoint(fields[1])
    const remote = endpoint(fields[2])
    if (!local || !remote) continue
    sockets.push({
      address: local.address,
      port: local.port,
      remoteAddress: remote.address,
      remotePort: remote.port,
      state: Number.parseInt(fields[3] ?? '', 16),
      inode: Number(fields[9]),
    })
  }

  return sockets
}

const WILDCARDS = new Set(['0.0.0.0', '::'])

/** The socket listens where a client of `host:port` would connect (its own address, or every address). */
export function listensFor(socket: ProcSocket, host: string, port: number): boolean {
  if (socket.state !== TCP_LISTEN || socket.port !== port) return false
  if (WILDCARDS.has(socket.address)) return true
  const bare = host.replaceAll(/^\[|\]$/g, '')
  if (socket.address === bare || socket.address === `::ffff:${bare}`) return true
  return bare === 'localhost' && (socket.address === '127.0.0.1' || socket.address === '::1')
}

/** The inodes of the sockets listening for `host:port` on this machine. */
export function listeningInodes(host: string, port: number, procRoot = '/proc'): Set<number> {
  return new Set(listeningSockets(procRoot).flatMap((s) => (listensFor(s, host, port) ? [s.inode] : [])))
}

/** The pids holding any of the socket inodes, found through the `socket:[inode]` links under /proc/<pid>/fd. */
export function pidsHoldingSockets(inodes: ReadonlySet<number>, procRoot = '/proc'): number[] {
  const pids = new Set([...socketHolders(inodes, procRoot).values()].flat())
  return [...pids].sort((a, b) => a - b)
}

/** For each socket inode, the pids holding it: one pass over /proc/<pid>/fd for any number of sockets. */
export function socketHolders(inodes: ReadonlySet<number>, procRoot = '/proc'): Map<number, number[]> {
  const holders = new Map<number, number[]>()
  if (inodes.size === 0) return holders
  for (const entry of readdirSync(procRoot)) {
    if (!/^\d+$/.test(entry)) continue
    let fds: string[]
    try {
      fds = readdirSync(`${procRoot}/${entry}/fd`)
    } catch {
      continue
    }

    for (const fd of fds) {
      let link: string
      try {
        link = readlinkSync(`${procRoot}/${entry}/fd/${fd}`)
      } catch {
        continue
      }

      const match = /^socket:\[(\d+)\]$/.exec(link)
      const inode = Number(match?.[1])
      if (match && inodes.has(inode)) {
        const pids = holders.get(inode) ?? []
        if (!pids.includes(Number(entry))) pids.push(Number(entry))
        holders.set(inode, pids)
      }
    }
  }

  return holders
}

/** The established TCP connections process `pid` holds to any of `ports` (on any address). */
export function connectionsTo(pid: number, ports: ReadonlySet<number>, procRoot = '/proc'): ProcSocket[] {
  return establishedConnections(pid, procRoot).filter((s) => ports.has(s.remotePort))
}

/** The sockets of this machine in LISTEN state, from /proc/net/tcp and /proc/net/tcp6. */
export function listeningSockets(procRoot = '/proc'): ProcSocket[] {
  return allSockets(procRoot).filter((socket) => socket.state === TCP_LISTEN)
}

/** Every TCP socket of this machine (IPv4 and IPv6) that has an inode. */
function allSockets(procRoot: string): ProcSocket[] {
  const sockets: ProcSocket[] = []
  for (const file of ['net/tcp', 'net/tcp6']) {
    let text: string
    try {
      text = readFileSync(`${procRoot}/${file}`, 'utf8')
    } catch {
      continue
    }

    for (const socket of parseProcNetTcp(text)) if (socket.inode > 0) sockets.push(socket)
  }

  return sockets
}

/** The TCP connections one process holds open (established), found through its own fd table. */
export function establishedConnections(pid: number, procRoot = '/proc'): ProcSocket[] {
  const held = new Set<number>()
  let fds: string[] = []
  try {
    fds = readdirSync(`${procRoot}/${pid}/fd`)
  } catch {
    return []
  }

  for (const fd of fds) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`${procRoot}/${pid}/fd/${fd}`))
      if (match) held.add(Number(match[1]))
    } catch {
      // closed meanwhile
    }
  }

  return allSockets(procRoot).filter((s) => s.state === TCP_ESTABLISHED && held.has(s.inode))
}

/** The processes listening on `host:port` on this machine. */
export function listeningPids(host: string, port: number, procRoot = '/proc'): number[] {
  return pidsHoldingSockets(listeningInodes(host, port, procRoot), procRoot)
}

export interface ProcessInfo {
  pid: number
  /** The executable's short name (/proc/<pid>/comm). */
  comm: string
  argv: string[]
  cwd?: string
  env?: Record<string, string>
  ppid?: number
  /** It leads its process group. */
  groupLeader: boolean
}

/** What /proc says about a process: enough to show it, and to start it again the same way. */
export function processInfo(pid: number, procRoot = '/proc'): ProcessInfo | undefined {
  let comm: string
  let cmdline: string
  try {
    comm = readFileSync(`${procRoot}/${pid}/comm`, 'utf8').trim()
    cmdline = readFileSync(`${procRoot}/${pid}/cmdline`, 'utf8')
  } catch {
    return undefined
  }

  const argv = cmdline.split('\0')
  if (argv.at(-1) === '') argv.pop()
  const info: ProcessInfo = {pid, comm, argv, groupLeader: false}
  try {
    info.cwd = readlinkSync(`${procRoot}/${pid}/cwd`)
  } catch {
    // not ours to read
  }

  try {
    const env: Record<string, string> = {}
    for (const pair of readFileSync(`${procRoot}/${pid}/environ`, 'utf8').split('\0')) {
      const eq = pair.indexOf('=')
      if (eq > 0) env[pair.slice(0, eq)] = pair.slice(eq + 1)
    }

    info.env = env
  } catch {
    // not ours to read
  }

  try {
    const stat = readFileSync(`${procRoot}/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    info.ppid = Number(fields[1])
    info.groupLeader = Number(fields[2]) === pid
  } catch {
    // gone
  }

  return info
}
