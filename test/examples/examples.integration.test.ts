import {execFile} from 'node:child_process'
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {ROOT} from '../helpers/cli.js'
import {acquireDockerLock, docker, importImage} from '../helpers/docker.js'

// The examples cannot run here (no image can be pulled): docker-compose validates them, and the svc image is built
// from the repository's Dockerfile on a base imported from the host's node, npm and busybox.
const BASE = 'svc-test-node:latest'
const run = `svcimage-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`
const IMAGE = `${run}:latest`

interface Result {
  code: number
  stdout: string
  stderr: string
}

function exec(
  file: string,
  args: string[],
  opts: {cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number} = {},
): Promise<Result> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      {cwd: opts.cwd, env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024},
      (error, stdout, stderr) => {
        resolve({
          code: error ? (typeof error.code === 'number' ? error.code : 1) : 0,
          stdout,
          stderr: stderr || (error?.message ?? ''),
        })
      },
    )
  })
}

/** The resolved config of an example, as `docker-compose config` prints it (YAML). */
async function composeConfig(example: string): Promise<string> {
  const result = await exec('docker-compose', ['config'], {cwd: path.join(ROOT, 'examples', example)})
  expect(result.code, result.stderr).toBe(0)
  return result.stdout
}

/** The config with YAML's folded plain scalars joined back into one line (long commands wrap). */
function unfolded(config: string): string {
  return config.replaceAll(/\n +(?![\w"'-]+:( |$)|- )/g, ' ')
}

describe('examples/ docker-compose files', () => {
  it('zookeeper: a 3-node ensemble, the agent, two services and the gateway', async () => {
    const config = await composeConfig('zookeeper')
    const flat = unfolded(config)
    for (const service of ['zoo1', 'zoo2', 'zoo3', 'agent', 'gateway', 'service_1', 'service_2']) {
      expect(config).toMatch(new RegExp(`^  ${service}:$`, 'm'))
    }

    expect(flat).toContain('agent --backend zk://zoo1:2181,zoo2:2181,zoo3:2181/services --internal')
    expect(flat).toContain('proxy --backend zk://zoo1:2181,zoo2:2181,zoo3:2181/services --listen 0.0.0.0:8080')
    expect(config).toContain(`context: ${ROOT}`)
    expect(config).toMatch(/SERVICE_NAME: service-2/)
  })

  it('consul: a 3-server cluster, the agent, a scaled web service and the gateway', async () => {
    const config = await composeConfig('consul')
    const flat = unfolded(config)
    for (const service of ['consul1', 'consul2', 'consul3', 'agent', 'gateway', 'web']) {
      expect(config).toMatch(new RegExp(`^  ${service}:$`, 'm'))
    }

    expect(config.match(/-bootstrap-expect=3/g)).toHaveLength(3)
    expect(config).toMatch(/deploy:\n\s+replicas: 3/)
    expect(flat).toContain('agent --backend consul://consul1:8500,consul2:8500,consul3:8500 --internal')
    expect(config).toContain('SERVICE_3000_NAME: service-web')
  })

  it('each has a README', () => {
    for (const example of ['zookeeper', 'consul']) {
      expect(readFileSync(path.join(ROOT, 'examples', example, 'README.md'), 'utf8')).toContain('docker compose up')
    }
  })
})

/** An image with the host's node (and the libraries it loads), npm, and busybox for RUN's /bin/sh. */
async function ensureNodeBase(): Promise<void> {
  const node = realpathSync(process.execPath)
  const npm = realpathSync('/usr/lib/node_modules/npm')
  const {size, mtimeMs} = statSync(node)
  const npmVersion = (JSON.parse(readFileSync(path.join(npm, 'package.json'), 'utf8')) as {version: string}).version
  await importImage(BASE, `node-${size}-${Math.round(mtimeMs)}-npm-${npmVersion}`, async (fs) => {
    for (const dir of ['bin', 'usr/bin', 'usr/local/bin', 'usr/local/lib/node_modules', 'root', 'etc']) {
      mkdirSync(path.join(fs, dir), {recursive: true})
    }

    copyFileSync('/bin/busybox', path.join(fs, 'bin/busybox'))
    chmodSync(path.join(fs, 'bin/busybox'), 0o755)
    for (const applet of ['sh', 'env', 'ls', 'cat', 'rm', 'mkdir']) symlinkSync('busybox', path.join(fs, 'bin', applet))
    symlinkSync('/bin/env', path.join(fs, 'usr/bin/env'))
    copyFileSync(node, path.join(fs, 'usr/local/bin/node'))
    chmodSync(path.join(fs, 'usr/local/bin/node'), 0o755)
    const ldd = await exec('ldd', [node])
    for (const library of [...ldd.stdout.matchAll(/(\/\S+)\s+\(0x/g)].map((m) => m[1]!)) {
      mkdirSync(path.join(fs, path.dirname(library)), {recursive: true})
      copyFileSync(realpathSync(library), path.join(fs, library))
    }

    const copied = await exec('cp', ['-a', npm, path.join(fs, 'usr/local/lib/node_modules/npm')])
    expect(copied.code, copied.stderr).toBe(0)
    symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', path.join(fs, 'usr/local/bin/npm'))
    writeFileSync(path.join(fs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n')
    writeFileSync(path.join(fs, 'etc/group'), 'root:x:0:\n')
  })
}

describe('the Dockerfile', () => {
  let releaseDocker: (() => void) | undefined
  const layers: string[] = []

  beforeAll(async () => {
    // no daemon restart of another test file during the build
    releaseDocker = await acquireDockerLock()
  }, 200_000)

  afterAll(async () => {
    await docker(['rmi', '-f', IMAGE]).catch(() => '')
    // the legacy builder keeps the build stage's layers as untagged images: remove the ones this build made
    for (const id of layers.reverse()) await docker(['rmi', id]).catch(() => '')
    releaseDocker?.()
  }, 120_000)

  it('builds the svc image on a local base (no pull), which runs --version and agent --help', async () => {
    await ensureNodeBase()
    const build = await exec(
      'docker',
      ['build', '--build-arg', `BASE=${BASE}`, '--label', `svc.test.run=${run}`, '-t', IMAGE, ROOT],
      {
        env: {...process.env, DOCKER_BUILDKIT: '0'},
        timeoutMs: 400_000,
      },
    )
    // every step's image but the base's (the first ' ---> ' of each stage is its FROM image, kept for the next run)
    const base = (await docker(['image', 'inspect', '--format', '{{.Id}}', BASE])).replace(/^sha256:/, '').slice(0, 12)
    layers.push(...[...build.stdout.matchAll(/^ ---> ([\da-f]{12})$/gm)].map((m) => m[1]!).filter((id) => id !== base))
    expect(build.code, `${build.stdout}\n${build.stderr}`).toBe(0)

    const version = await docker(['run', '--rm', IMAGE, '--version'])
    expect(version).toMatch(/^svc-discovery\/\d+\.\d+\.\d+ linux-x64 node-v20\./)
    const help = await docker(['run', '--rm', IMAGE, 'agent', '--help'])
    expect(help).toContain('Register the published ports of running Docker containers')
    expect(await docker(['image', 'inspect', '--format', '{{json .Config.Cmd}}', IMAGE])).toBe('["agent"]')
  }, 600_000)
})
