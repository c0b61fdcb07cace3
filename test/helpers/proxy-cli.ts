import type {ChildProcess} from 'node:child_process'

import {spawnCli, waitForOutput} from './cli.js'

export interface ProxyCli {
  child: ChildProcess
  /** host:port of the plain listener, when there is one. */
  plain?: string
  /** host:port of the TLS listener, when there is one. */
  tls?: string
  stderr(): string
}

/** Starts `svc proxy ARGS` and waits for its listening lines (the https one comes last when TLS is asked for). */
export async function startProxyCli(args: string[], env: NodeJS.ProcessEnv): Promise<ProxyCli> {
  const child = spawnCli(['proxy', ...args], env)
  let stderr = ''
  let stdout = ''
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString()
  })
  const last = args.includes('--tls-listen') ? /^svc proxy listening on https:/ : /^svc proxy listening on http:/
  await waitForOutput(child, last).catch((error: unknown) => {
    child.kill('SIGKILL')
    throw error
  })
  return {
    child,
    plain: /^svc proxy listening on http:\/\/(\S+)/m.exec(stdout)?.[1],
    tls: /^svc proxy listening on https:\/\/(\S+)/m.exec(stdout)?.[1],
    stderr: () => stderr,
  }
}
