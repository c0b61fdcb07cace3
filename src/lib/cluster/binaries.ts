import {accessSync, constants, existsSync, readFileSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {UserError} from '../errors.js'
import type {ClusterKind} from './types.js'

const INSTALL = 'run scripts/install-backends.sh'

/** Debian's ZooKeeper: the server jar names its dependencies in its manifest; /etc/zookeeper/conf holds log4j.properties. */
export const ZOOKEEPER_JAR = '/usr/share/java/zookeeper.jar'
export const ZOOKEEPER_CONF_DIR = '/etc/zookeeper/conf'
/** A logging binding for slf4j, which the Debian jar lacks (without one ZooKeeper logs nothing). */
const SLF4J_BINDINGS = ['/usr/share/java/slf4j-simple.jar']

type Env = Record<string, string | undefined>

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** The first executable called `name` on PATH. */
export function which(name: string, env: Env = process.env): string | undefined {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue
    const candidate = path.join(dir, name)
    if (isExecutable(candidate)) return candidate
  }

  return undefined
}

/** The folder of svc's package.json (found upwards from this module, in src/ and in dist/ alike). */
export function packageRoot(): string | undefined {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const manifest = path.join(dir, 'package.json')
    if (existsSync(manifest)) {
      try {
        const parsed = JSON.parse(readFileSync(manifest, 'utf8')) as unknown
        if (typeof parsed === 'object' && parsed !== null && 'bin' in parsed) return dir
      } catch {
        // keep looking
      }
    }

    const parent = path.dirname(dir)
    if (parent === dir) return undefined
    dir = parent
  }
}

function javaBinary(env: Env): string | undefined {
  if (env.JAVA_HOME) {
    const candidate = path.join(env.JAVA_HOME, 'bin', 'java')
    if (isExecutable(candidate)) return candidate
  }

  return which('java', env)
}

/**
 * The executable that runs a member: java for ZooKeeper (whose jar must exist too), etcd, consul.
 * Overrides: SVC_ETCD_BIN, SVC_CONSUL_BIN, SVC_ZOOKEEPER_JAR, JAVA_HOME. Throws UserError naming the package.
 */
export function findBinary(kind: ClusterKind, env: Env = process.env): string {
  switch (kind) {
    case 'zk': {
      const jar = env.SVC_ZOOKEEPER_JAR || ZOOKEEPER_JAR
      if (!existsSync(jar)) {
        throw new UserError(
          `ZooKeeper is not installed (${jar} is missing)`,
          `install the Debian package zookeeper: ${INSTALL}`,
        )
      }

      const java = javaBinary(env)
      if (!java)
        throw new UserError(
          'ZooKeeper needs java, which is not on PATH',
          `install the Debian package zookeeper: ${INSTALL}`,
        )
      return java
    }

    case 'etcd': {
      const explicit = env.SVC_ETCD_BIN
      if (explicit) {
        if (isExecutable(explicit)) return explicit
        throw new UserError(`SVC_ETCD_BIN names ${explicit}, which is not an executable`, 'point it at the etcd binary')
      }

      const found = which('etcd', env)
      if (found) return found
      throw new UserError(
        'etcd is not installed (no etcd on PATH)',
        `install the Debian package etcd-server: ${INSTALL}`,
      )
    }

    case 'consul': {
      const explicit = env.SVC_CONSUL_BIN
      if (explicit) {
        if (isExecutable(explicit)) return explicit
        throw new UserError(
          `SVC_CONSUL_BIN names ${explicit}, which is not an executable`,
          'point it at the consul binary',
        )
      }

      const root = packageRoot()
      const bundled = root ? path.join(root, '.backends', 'consul', 'usr', 'bin', 'consul') : undefined
      if (bundled && isExecutable(bundled)) return bundled
      const found = which('consul', env)
      if (found) return found
      throw new UserError(
        'consul is not installed (no .backends/consul/usr/bin/consul, no consul on PATH)',
        `${INSTALL} (it unpacks the Debian package consul into .backends/consul), or set SVC_CONSUL_BIN`,
      )
    }
  }
}

/** ZooKeeper's class path: the conf folder, the server jar, and an slf4j binding when one is installed. */
export function zookeeperClasspath(env: Env = process.env): string {
  const parts = [ZOOKEEPER_CONF_DIR, env.SVC_ZOOKEEPER_JAR || ZOOKEEPER_JAR]
  const binding = SLF4J_BINDINGS.find((jar) => existsSync(jar))
  if (binding) parts.push(binding)
  return parts.join(path.delimiter)
}
