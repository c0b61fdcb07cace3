/* eslint-disable import/no-named-as-default-member -- fast-check is used as fc.<arbitrary>, as its documentation does */
import fc from 'fast-check'
import {existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {describe, expect, it} from 'vitest'

import {isSkipped} from '../../src/lib/registry/core/driver.js'
import {instanceFileName} from '../../src/lib/registry/local/files.js'
import {decodeFile} from '../../src/lib/registry/local/record.js'
import {withDefaults} from '../../src/lib/registry/options.js'
import {localRegistry} from '../helpers/local.js'
import {HEALTH_VALUES, type InstanceInput, type ServiceInstance} from '../../src/lib/registry/types.js'

const serviceName = fc.stringMatching(/^[\w.-]{1,24}$/).filter((n) => n !== '.' && n !== '..')
const instanceId = fc.stringMatching(/^[\w.:@-]{1,40}$/).filter((n) => n !== '.' && n !== '..')

const registration: fc.Arbitrary<InstanceInput> = fc.record({
  service: serviceName,
  id: instanceId,
  address: fc.constantFrom('127.0.0.1', '::1', 'host.example', 'fe80::1%eth0'),
  port: fc.integer({min: 1, max: 65_535}),
  tags: fc.array(fc.stringMatching(/^[^\s,]{1,12}$/), {maxLength: 3}),
  meta: fc.dictionary(fc.stringMatching(/^[A-Za-z_][\w.-]{0,10}$/), fc.string({unit: 'binary', maxLength: 20}), {
    maxKeys: 3,
  }),
  health: fc.constantFrom(...HEALTH_VALUES),
})

/** JSON that is nearly an instance file: any field missing, mistyped or out of range. */
const instanceLike = fc.record(
  {
    instance: fc.record(
      {
        service: fc.oneof(serviceName, fc.string({maxLength: 40}), fc.integer()),
        id: fc.oneof(instanceId, fc.string({maxLength: 40})),
        address: fc.oneof(fc.constant('127.0.0.1'), fc.string({maxLength: 40})),
        port: fc.oneof(fc.integer({min: -1, max: 70_000}), fc.double(), fc.string({maxLength: 40})),
        tags: fc.oneof(fc.array(fc.string({maxLength: 40}), {maxLength: 3}), fc.anything()),
        meta: fc.oneof(
          fc.dictionary(fc.string({maxLength: 40}), fc.string({maxLength: 40}), {maxKeys: 3}),
          fc.anything(),
        ),
        health: fc.oneof(fc.constantFrom(...HEALTH_VALUES), fc.string({maxLength: 40})),
        source: fc.anything(),
      },
      {requiredKeys: []},
    ),
    ttlMs: fc.oneof(fc.integer({min: -10, max: 100_000}), fc.double(), fc.string({maxLength: 40}), fc.constant(1e308)),
    owner: fc.anything(),
  },
  {requiredKeys: []},
)

const content: fc.Arbitrary<Buffer | string> = fc.oneof(
  fc.uint8Array({maxLength: 300}).map((bytes) => Buffer.from(bytes)),
  fc.json(),
  fc.string({unit: 'binary', maxLength: 40}),
  instanceLike.map((value) => JSON.stringify(value)),
  instanceLike.map((value) => JSON.stringify(value).slice(0, 30)),
)

/** A name a file system accepts for one entry. */
const entryName = fc
  .oneof(fc.string({unit: 'binary', minLength: 1, maxLength: 40}), fc.stringMatching(/^[\w.%:-]{1,30}\.json$/))
  .map((name) => name.replaceAll(/[/\0]/g, '_'))
  .filter((name) => name !== '.' && name !== '..' && Buffer.byteLength(name) < 200)

interface Planted {
  /** Index of a real registration whose service directory receives it; undefined for another directory. */
  beside?: number
  dir: string
  name: string
  content: Buffer | string
  /** Use the file name svc would give the instance inside (when the content names one). */
  named: boolean
  expired: boolean
}

const planted: fc.Arbitrary<Planted> = fc.record({
  beside: fc.option(fc.nat({max: 9}), {nil: undefined}),
  dir: fc.oneof(serviceName, entryName),
  name: entryName,
  content,
  named: fc.boolean(),
  expired: fc.boolean(),
})

function same(a: ServiceInstance, b: ServiceInstance): boolean {
  return a.service === b.service && a.id === b.id
}

describe('local registry under arbitrary files', () => {
  it('lists every real registration whatever lies beside it, before and after the sweeper, and never throws', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'svc-local-prop-'))
    let run = 0
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.uniqueArray(registration, {minLength: 1, maxLength: 4, selector: (r) => `${r.service}/${r.id}`}),
          fc.array(planted, {maxLength: 8}),
          async (registrations, files) => {
            const dir = path.join(root, `r${run++}`)
            const registry = localRegistry({kind: 'local', dir}, withDefaults())
            try {
              const handles = []
              for (const input of registrations) handles.push(await registry.register(input, {ttlMs: 600_000}))
              const real = handles.map((h) => h.instance)
              const realFiles = new Set(real.map((i) => registry.instancePath(i.service, i.id)))

              const written: Array<{target: string; file: Planted}> = []
              for (const file of files) {
                const owner = file.beside === undefined ? undefined : real[file.beside % real.length]
                const where = path.join(dir, owner?.service ?? file.dir)
                let name = file.name
                if (file.named && typeof file.content === 'string') {
                  const id: unknown = (
                    JSON.parse(file.content.startsWith('{') ? safeJson(file.content) : '{}') as {
                      instance?: {id?: unknown}
                    }
                  ).instance?.id
                  if (typeof id === 'string') name = instanceFileName(id)
                }

                const target = path.join(where, name)
                // replacing a real registration's file is not the registry's doing
                if (realFiles.has(target) || existsSync(target)) continue
                mkdirSync(where, {recursive: true})
                writeFileSync(target, file.content)
                if (file.expired) utimesSync(target, new Date(0), new Date(0))
                written.push({target, file})
              }

              const services = new Set(real.map((i) => i.service))
              for (let pass = 0; pass < 2; pass++) {
                const summaries = await registry.listServices()
                for (const service of services) {
                  const listed = await registry.listInstances(service)
                  for (const instance of real.filter((i) => i.service === service)) {
                    expect(listed.find((i) => same(i, instance))).toEqual(instance)
                  }

                  const summary = summaries.find((s) => s.name === service)
                  expect(summary?.instances).toBeGreaterThanOrEqual(real.filter((i) => i.service === service).length)
                }
              }

              // the sweeper only ever removed files that were valid, expired instance files of svc's
              for (const {target, file} of written) {
                if (existsSync(target)) continue
                expect(file.expired).toBe(true)
                const parsed = decodeFile(String(file.content), 0, target, path.basename(path.dirname(target)))
                expect(isSkipped(parsed.result)).toBe(false)
              }

              for (const file of realFiles) expect(readFileSync(file, 'utf8')).toMatch(/"instance"/)
            } finally {
              await registry.close()
              rmSync(dir, {recursive: true, force: true})
            }
          },
        ),
        {numRuns: 60},
      )
    } finally {
      rmSync(root, {recursive: true, force: true})
    }
  })
})

function safeJson(text: string): string {
  try {
    JSON.parse(text)
    return text
  } catch {
    return '{}'
  }
}
