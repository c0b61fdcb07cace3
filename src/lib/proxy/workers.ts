import cluster, {type Worker} from 'node:cluster'

/** Set in a worker's environment: its number, 1..N. The primary serves the admin endpoints, asking every worker. */
export const WORKER_ENV = 'SVC_PROXY_WORKER'

/** This process's worker number under `svc proxy --workers N`, or undefined in the primary / a single process. */
export function workerNumber(): number | undefined {
  if (!cluster.isWorker) return undefined
  const n = Number(process.env[WORKER_ENV])
  return Number.isInteger(n) && n > 0 ? n : undefined
}

/** What a worker tells the primary. */
export type WorkerMessage =
  | {type: 'ready'; address: string; plainAddress?: string; tlsAddress?: string}
  | {type: 'failed'; message: string}
  | {type: 'stopped'; cut: number}

export interface PrimaryOptions {
  workers: number
  /** The workers' arguments (default: this process's); secrets go in `env` instead, off their command lines. */
  args?: string[]
  /** Added to the workers' environment. */
  env?: Record<string, string>
  /** How long a worker may take to start. */
  startTimeoutMs: number
  /** Signals the primary passes on to every worker (SIGUSR1: reopen the access log), until it stops. */
  forwardSignals?: NodeJS.Signals[]
  log(line: string): void
}

/** A worker that said it is ready and has not exited since: the ones the admin endpoints ask. */
export interface ReadyWorker {
  n: number
  worker: Worker
}

export interface RunningPrimary {
  /** How many workers the primary keeps running. */
  workers: number
  /** The workers serving now (a re-forked one counts once it is ready again). */
  ready(): ReadyWorker[]
  address: string
  plainAddress?: string
  tlsAddress?: string
  /** Sends `signal` to every worker (SIGHUP: each reloads its TLS certificates). */
  forward(signal: NodeJS.Signals): void
  /** Asks every worker to drain and waits for them to exit; resolves with the requests cut. */
  stop(drainTimeoutMs: number): Promise<number>
}

/**
 * Forks `workers` copies of this command; each holds its own registry watch and route table and shares the
 * listening socket (node:cluster). Resolves once every worker listens; rejects with the first worker's failure.
 * A worker that dies later is replaced (at most once a second).
 */
export async function runPrimary(opts: PrimaryOptions): Promise<RunningPrimary> {
  let stopping = false
  const workers = new Map<number, Worker>()
  const ready = new Set<Worker>()
  let lastRestart = 0
  if (opts.args !== undefined) cluster.setupPrimary({args: opts.args})
  const fork = (n: number): Worker => {
    const worker = cluster.fork({...opts.env, [WORKER_ENV]: String(n)})
    workers.set(n, worker)
    worker.on('message', (message: WorkerMessage) => {
      if (message.type === 'ready') ready.add(worker)
    })
    worker.on('exit', (code, signal) => {
      ready.delete(worker)
      if (workers.get(n) !== worker) return
      workers.delete(n)
      if (stopping) return
      opts.log(`worker ${n} exited (${signal ?? code}); starting a new one`)
      const wait = Math.max(0, lastRestart + 1000 - Date.now())
      lastRestart = Date.now() + wait
      setTimeout(() => {
        if (!stopping) fork(n)
      }, wait).unref()
    })
    return worker
  }

  const started = await Promise.allSettled(
    Array.from({length: opts.workers}, (_, i) => i + 1).map(
      (n) =>
        new Promise<WorkerMessage & {type: 'ready'}>((resolve, reject) => {
          const worker = fork(n)
          const timer = setTimeout(
            () => reject(new Error(`worker ${n} did not start within ${opts.startTimeoutMs} ms`)),
            opts.startTimeoutMs,
          )
          worker.on('message', (message: WorkerMessage) => {
            if (message.type === 'ready') {
              clearTimeout(timer)
              resolve(message)
            } else if (message.type === 'failed') {
              clearTimeout(timer)
              reject(new Error(message.message))
            }
          })
          worker.once('exit', (code) => {
            clearTimeout(timer)
            reject(new Error(`worker ${n} exited with status ${code} while starting`))
          })
        }),
    ),
  )

  const forward = (signal: NodeJS.Signals): void => {
    for (const worker of workers.values()) worker.process.kill(signal)
  }

  for (const signal of opts.forwardSignals ?? []) process.on(signal, forward)
  const stop = async (drainTimeoutMs: number): Promise<number> => {
    stopping = true
    for (const signal of opts.forwardSignals ?? []) process.off(signal, forward)
    const exits = [...workers.values()].map(
      (worker) =>
        new Promise<number>((resolve) => {
          let cut = 0
          worker.on('message', (message: WorkerMessage) => {
            if (message.type === 'stopped') cut = message.cut
          })
          const kill = setTimeout(() => worker.process.kill('SIGKILL'), drainTimeoutMs + 5000)
          worker.once('exit', () => {
            clearTimeout(kill)
            resolve(cut)
          })
          worker.process.kill('SIGTERM')
        }),
    )
    const cuts = await Promise.all(exits)
    return cuts.reduce((a, b) => a + b, 0)
  }

  const failure = started.find((r) => r.status === 'rejected')
  if (failure) {
    await stop(0)
    throw failure.reason
  }

  const first = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))[0]!
  return {
    workers: opts.workers,
    ready: () =>
      [...workers].flatMap(([n, worker]) => (ready.has(worker) && worker.isConnected() ? [{n, worker}] : [])),
    address: first.address,
    plainAddress: first.plainAddress,
    tlsAddress: first.tlsAddress,
    forward(signal) {
      for (const worker of workers.values()) worker.process.kill(signal)
    },
    stop,
  }
}

/**
 * `argv` without the named flags and their values, in every form a parser takes: `--name value`, `--name=value`,
 * `-c value` and `-cvalue`. Arguments after `--` are kept as they are.
 */
export function withoutFlags(argv: readonly string[], flags: ReadonlyArray<{name: string; char?: string}>): string[] {
  const out: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--') {
      out.push(...argv.slice(i))
      break
    }

    const flag = flags.find(
      (f) =>
        arg === `--${f.name}` ||
        arg.startsWith(`--${f.name}=`) ||
        (f.char !== undefined && arg.startsWith(`-${f.char}`) && !arg.startsWith('--')),
    )
    if (flag === undefined) {
      out.push(arg)
      continue
    }

    // the value is the next argument unless it came attached
    if (arg === `--${flag.name}` || arg === `-${flag.char}`) i++
  }

  return out
}
