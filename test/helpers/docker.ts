import {execFile} from 'node:child_process'
import {chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {acquireLock, withLock} from './lock.js'

export const TEST_IMAGE = 'svc-test-busybox:latest'
/** Bumped when the image's content changes; an older image of the same name is rebuilt. */
const IMAGE_VERSION = 'svc-health-cgi-1'
const BUSYBOX = '/bin/busybox'

/** `/www/cgi-bin/health` answers 500 while /tmp/unhealthy exists in the container, else 200. */
const HEALTH_CGI = `#!/bin/sh
if [ -f /tmp/unhealthy ]; then
  printf 'Status: 500 Internal Server Error\\r\\nContent-Type: text/plain\\r\\n\\r\\nunhealthy\\n'
else
  printf 'Content-Type: text/plain\\r\\n\\r\\nok\\n'
fi
`

/** httpd in the background under a shell that exits 0 on SIGTERM, so `docker stop` takes milliseconds. */
export const HTTPD_COMMAND = ['/bin/sh', '-c', 'trap "exit 0" TERM INT; httpd -f -p 80 -h /www & wait']

/** Runs the docker CLI, bounded; rejects with its stderr. */
export function docker(args: string[], timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('docker', args, {timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024}, (error, stdout, stderr) => {
      if (error) reject(new Error(`docker ${args.join(' ')}: ${stderr.trim() || error.message}`))
      else resolve(stdout.trim())
    })
  })
}

let building: Promise<string> | undefined

/** Builds svc-test-busybox:latest with `docker import` from busybox-static, once; returns its name. */
export function ensureTestImage(): Promise<string> {
  building ??= build().catch((error: unknown) => {
    building = undefined
    throw error
  })
  return building
}

async function build(): Promise<string> {
  await importImage(TEST_IMAGE, IMAGE_VERSION, async (fs) => {
    for (const dir of ['bin', 'tmp', 'www/cgi-bin', 'etc']) mkdirSync(path.join(fs, dir), {recursive: true})
    copyFileSync(BUSYBOX, path.join(fs, 'bin/busybox'))
    chmodSync(path.join(fs, 'bin/busybox'), 0o755)
    const applets = await new Promise<string>((resolve, reject) => {
      execFile(BUSYBOX, ['--list'], (error, stdout) => (error ? reject(error) : resolve(stdout)))
    })
    for (const applet of applets.split('\n').map((a) => a.trim())) {
      if (applet && applet !== 'busybox') symlinkSync('busybox', path.join(fs, 'bin', applet))
    }

    writeFileSync(path.join(fs, 'www/index.html'), '<h1>svc test</h1>\n')
    writeFileSync(path.join(fs, 'www/cgi-bin/health'), HEALTH_CGI, {mode: 0o755})
  })
  return TEST_IMAGE
}

/**
 * Makes `image` with `docker import` (no image can be pulled here) from a root file system that `populate` fills,
 * with a world-writable /tmp; the `svc.test.image` label holds `version`, and an image already labelled so is kept.
 */
export async function importImage(
  image: string,
  version: string,
  populate: (fs: string) => Promise<void> | void,
): Promise<void> {
  const format = '{{index .Config.Labels "svc.test.image"}}'
  if ((await docker(['image', 'inspect', '--format', format, image]).catch(() => '')) === version) return
  const root = mkdtempSync(path.join(tmpdir(), 'svc-image-'))
  try {
    const fs = path.join(root, 'fs')
    mkdirSync(path.join(fs, 'tmp'), {recursive: true})
    await populate(fs)
    chmodSync(path.join(fs, 'tmp'), 0o1777)
    const tarball = path.join(root, 'rootfs.tar')
    await new Promise<void>((resolve, reject) => {
      execFile('tar', ['-C', fs, '-cf', tarball, '.'], (error) => (error ? reject(error) : resolve()))
    })
    await docker(['import', '--change', `LABEL svc.test.image=${version}`, tarball, image], 120_000)
  } finally {
    rmSync(root, {recursive: true, force: true})
  }
}

export interface RunOptions {
  /** Suffix of the container's name; the run's prefix goes first. */
  name: string
  env?: Record<string, string>
  labels?: Record<string, string>
  /** Container ports to publish on 127.0.0.1 (a free host port each); default [80]. */
  publish?: string[]
  /** Ports to expose without publishing (for --internal). */
  expose?: string[]
  command?: string[]
  /** Extra `docker run` arguments (e.g. --health-cmd). */
  args?: string[]
}

export interface TestContainer {
  id: string
  name: string
}

/** Containers of one test run: unique name prefix, a label to find them, and cleanup that removes them all. */
export class TestContainers {
  readonly prefix: string
  private readonly label: string

  constructor(label = 'svct') {
    this.prefix = `${label}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`
    this.label = `svc.test.run=${this.prefix}`
  }

  async run(opts: RunOptions): Promise<TestContainer> {
    const image = await ensureTestImage()
    const name = `${this.prefix}-${opts.name}`
    const args = ['run', '-d', '--name', name, '--label', this.label]
    for (const port of opts.publish ?? ['80']) args.push('-p', `127.0.0.1::${port}`)
    for (const port of opts.expose ?? []) args.push('--expose', port)
    for (const [k, v] of Object.entries(opts.env ?? {})) args.push('-e', `${k}=${v}`)
    for (const [k, v] of Object.entries(opts.labels ?? {})) args.push('--label', `${k}=${v}`)
    args.push(...(opts.args ?? []), image, ...(opts.command ?? HTTPD_COMMAND))
    const id = await docker(args)
    return {id, name}
  }

  /** The 127.0.0.1 host port a container port is published on. */
  async hostPort(container: TestContainer, port = '80/tcp'): Promise<number> {
    const out = await docker(['port', container.name, port])
    const match = /127\.0\.0\.1:(\d+)/.exec(out)
    if (!match) throw new Error(`${container.name} does not publish ${port} on 127.0.0.1: ${out}`)
    return Number(match[1])
  }

  stop(container: TestContainer): Promise<string> {
    return docker(['stop', '-t', '5', container.name])
  }

  remove(container: TestContainer): Promise<string> {
    return docker(['rm', '-f', container.name])
  }

  pause(container: TestContainer): Promise<string> {
    return docker(['pause', container.name])
  }

  unpause(container: TestContainer): Promise<string> {
    return docker(['unpause', container.name])
  }

  exec(container: TestContainer, command: string[]): Promise<string> {
    return docker(['exec', container.name, ...command])
  }

  /** Makes the container's /cgi-bin/health answer 500 (or 200 again). */
  setHealthy(container: TestContainer, healthy: boolean): Promise<string> {
    return this.exec(container, healthy ? ['rm', '-f', '/tmp/unhealthy'] : ['touch', '/tmp/unhealthy'])
  }

  /** Removes every container this run created. */
  async cleanup(): Promise<void> {
    const ids = await docker(['ps', '-aq', '--filter', `label=${this.label}`]).catch(() => '')
    const list = ids.split('\n').filter((id) => id !== '')
    if (list.length > 0) await docker(['rm', '-f', ...list], 60_000).catch(() => '')
  }
}

/**
 * The Docker daemon lock, shared by every test process: the agent's daemon-restart test holds it, and so does any
 * test whose containers must keep running meanwhile (a restarted daemon stops them).
 */
const DOCKER_LOCK = path.join(tmpdir(), 'svc-test-docker.lock')
const DOCKER_LOCK_WAIT_MS = 180_000

export function withDockerLock<T>(fn: () => Promise<T>): Promise<T> {
  return withLock(DOCKER_LOCK, 'the Docker daemon lock', fn, DOCKER_LOCK_WAIT_MS)
}

export function acquireDockerLock(): Promise<() => void> {
  return acquireLock(DOCKER_LOCK, 'the Docker daemon lock', DOCKER_LOCK_WAIT_MS)
}
