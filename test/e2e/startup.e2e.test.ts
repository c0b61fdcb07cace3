import {spawnSync} from 'node:child_process'
import {mkdtempSync, readFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {describe, expect, it} from 'vitest'

import {BIN, ROOT} from '../helpers/cli.js'

const dir = mkdtempSync(path.join(tmpdir(), 'svc-startup-'))

function packagesLoaded(args: string[]): string[] {
  const traceFile = path.join(dir, `trace-${args.join('-').replaceAll(/\W/g, '_')}`)
  const tracers = [
    '-r',
    path.join(ROOT, 'test/fixtures/trace-requires.cjs'),
    '--import',
    path.join(ROOT, 'bench/trace-imports.mjs'),
  ]
  spawnSync(process.execPath, [...tracers, BIN, ...args], {
    env: {...process.env, SVC_HOME: dir, SVC_TRACE_FILE: traceFile, SVC_IMPORT_TRACE_FILE: `${traceFile}.esm`},
    timeout: 20_000,
  })
  const esm = readFileSync(`${traceFile}.esm`, {encoding: 'utf8', flag: 'a+'})
  return [...new Set([...esm.split('\n'), ...readFileSync(traceFile, 'utf8').split('\n')])]
}

describe('start-up stays light', () => {
  it('loads no backend client, ink, react or prom-client for a local lookup', () => {
    const loaded = packagesLoaded(['resolve', 'X', '--backend', 'local'])
    // oclif's core comes inside the CLI's bundle (scripts/bundle.mjs), not from node_modules
    expect(loaded).not.toContain('@oclif/core')
    for (const heavy of [
      'node-zookeeper-client',
      'etcd3',
      '@grpc/grpc-js',
      'consul',
      'ink',
      'react',
      'cli-table3',
      'prom-client',
    ]) {
      expect(loaded).not.toContain(heavy)
    }

    // plugins load for their own commands only (and not-found for an unknown command on a terminal)
    expect(loaded.filter((p) => p.startsWith('@oclif/plugin-') || p === 'fastest-levenshtein')).toEqual([])
  })

  it('sees a plugin where one is used, so the check above can fail', () => {
    expect(packagesLoaded(['version'])).toContain('@oclif/plugin-version')
  })

  it('loads only the client of the backend in use', () => {
    const loaded = packagesLoaded(['resolve', 'X', '--backend', 'zk://127.0.0.1:1'])
    expect(loaded).toContain('node-zookeeper-client')
    expect(loaded).not.toContain('etcd3')
    expect(loaded).not.toContain('consul')
  })
})
