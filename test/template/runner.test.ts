import {existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {afterEach, describe, expect, it} from 'vitest'

import {ExternalError, UserError} from '../../src/lib/errors.js'
import type {StreamEvent} from '../../src/lib/events.js'
import type {ServiceInstance, WatchEvent} from '../../src/lib/registry/types.js'
import {loadTemplates} from '../../src/lib/template/load.js'
import {runTemplates, type TemplateRunOptions} from '../../src/lib/template/runner.js'
import {DebouncedRunner} from '../../src/lib/watch/exec.js'

/** A registry whose watch yields what the test pushes: the runner's one watch of all services. */
function fakeRegistry(): {description: string; push(event: WatchEvent): void; watches: number} & {
  watch(service?: string, opts?: {signal?: AbortSignal}): AsyncIterable<WatchEvent>
} {
  const queue: WatchEvent[] = []
  let wake: (() => void) | undefined
  const fake = {
    description: 'fake://',
    watches: 0,
    push(event: WatchEvent) {
      queue.push(event)
      wake?.()
    },
    async *watch(service?: string, opts?: {signal?: AbortSignal}): AsyncIterable<WatchEvent> {
      expect(service).toBeUndefined()
      fake.watches++
      while (!opts?.signal?.aborted) {
        const next = queue.shift()
        if (next) {
          yield next
          continue
        }

        await new Promise<void>((resolve) => {
          wake = resolve
          opts?.signal?.addEventListener('abort', () => resolve(), {once: true})
        })
      }
    },
  }
  return fake
}

const web = (id: string, port: number, meta: Record<string, string> = {}): ServiceInstance => ({
  service: 'web',
  id,
  address: '127.0.0.1',
  port,
  tags: [],
  meta,
  health: 'passing',
})

const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, {recursive: true, force: true})
})

async function setUp(templates: Array<{text: string; exec?: string}>, extra: Partial<TemplateRunOptions> = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'svc-runner-'))
  dirs.push(dir)
  const specs = templates.map(({text, exec}, i) => {
    const source = path.join(dir, `t${i}.hbs`)
    writeFileSync(source, text)
    // {dir}: the test's directory, since a command runs in svc's working directory
    return {source, out: path.join(dir, `out${i}`), ...(exec === undefined ? {} : {exec: exec.replace('{dir}', dir)})}
  })
  const loaded = await loadTemplates(specs, {dryRun: extra.dryRun ?? false})
  const events: StreamEvent[] = []
  const printed: string[] = []
  const controller = new AbortController()
  const registry = fakeRegistry()
  const options: TemplateRunOptions = {
    templates: loaded,
    once: false,
    dryRun: false,
    debounceMs: 50,
    execTimeoutMs: 5000,
    signal: controller.signal,
    event: (e) => events.push(e),
    print: (out, content) => printed.push(`${out}=${content}`),
    ...extra,
  }
  const done = runTemplates(registry, options)
  const until = async (what: string, condition: () => boolean): Promise<void> => {
    const deadline = Date.now() + 5000
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`${what}: ${JSON.stringify(events)}`)
      await sleep(10)
    }
  }

  return {dir, specs, events, printed, registry, done, until, stop: () => controller.abort()}
}

const PORTS = '{{#each (service "web")}}{{port}} {{/each}}'
const types = (events: StreamEvent[]): string[] => events.map((e) => e.type)

describe('runTemplates', () => {
  it('renders on the snapshot, then once per burst of changes; runs the command only when the bytes change', async () => {
    const t = await setUp([{text: PORTS, exec: 'echo run >> {dir}/runs'}])
    const runs = (): string =>
      existsSync(path.join(t.dir, 'runs')) ? readFileSync(path.join(t.dir, 'runs'), 'utf8') : ''
    t.registry.push({type: 'snapshot', instances: [web('a', 1)]})
    await t.until('watching', () => types(t.events).includes('watching'))
    expect(readFileSync(t.specs[0]!.out, 'utf8')).toBe('1 ')
    expect(runs()).toBe('run\n')
    for (let port = 2; port <= 6; port++) t.registry.push({type: 'added', instance: web(`p${port}`, port)})
    await t.until('burst rendered', () => types(t.events).filter((type) => type === 'exec').length === 2)
    expect(readFileSync(t.specs[0]!.out, 'utf8')).toBe('1 2 3 4 5 6 ')
    // a change the template does not show: rendered, same bytes, nothing written, nothing run
    t.registry.push({type: 'changed', instance: web('a', 1, {v: '2'}), previous: web('a', 1)})
    await sleep(200)
    expect(types(t.events)).toEqual(['rendered', 'exec', 'watching', 'rendered', 'exec'])
    expect(runs()).toBe('run\nrun\n')
    expect(t.registry.watches).toBe(1)
    t.stop()
    await t.done
  })

  it('runs a command shared by two outputs once per pass, and survives its failure', async () => {
    const t = await setUp([
      {text: PORTS, exec: 'exit 4'},
      {text: `x ${PORTS}`, exec: 'exit 4'},
    ])
    t.registry.push({type: 'snapshot', instances: [web('a', 1)]})
    await t.until('watching', () => types(t.events).includes('watching'))
    t.registry.push({type: 'added', instance: web('b', 2)})
    await t.until('second pass', () => types(t.events).filter((type) => type === 'exec').length === 2)
    await sleep(100)
    const execs = t.events.filter((e) => e.type === 'exec')
    expect(execs).toHaveLength(2)
    expect(execs[0]).toMatchObject({command: 'exit 4', ok: false, exitCode: 4, detail: 'exit status 4'})
    t.stop()
    await t.done
  })

  it('a render error at start is a usage error naming the file and the line', async () => {
    const t = await setUp([{text: 'ok\n{{#each (service "web")}}{{join port}}{{/each}}'}])
    t.registry.push({type: 'snapshot', instances: [web('a', 1)]})
    const error = await t.done.catch((error_: unknown) => error_)
    expect(error).toBeInstanceOf(UserError)
    expect((error as UserError).exitCode).toBe(2)
    expect((error as UserError).message).toBe(
      `template ${t.specs[0]!.source}:2: join takes a list, such as (service "web"), not number`,
    )
  })

  it('after start, a failing render is reported and the previous output stays', async () => {
    const t = await setUp([{text: '{{#each (service "web")}}{{#each (service meta.next)}}{{/each}}{{port}}{{/each}}.'}])
    t.registry.push({type: 'snapshot', instances: []})
    await t.until('watching', () => types(t.events).includes('watching'))
    t.registry.push({type: 'added', instance: web('a', 1)})
    await t.until('error', () => types(t.events).includes('error'))
    expect(readFileSync(t.specs[0]!.out, 'utf8')).toBe('.')
    t.registry.push({type: 'changed', instance: web('a', 1, {next: 'web'}), previous: web('a', 1)})
    await t.until('rendered again', () => types(t.events).filter((type) => type === 'rendered').length === 2)
    expect(readFileSync(t.specs[0]!.out, 'utf8')).toBe('1.')
    t.stop()
    await t.done
  })

  it('--once returns after the first pass; a failed command makes it fail; --dry-run writes and runs nothing', async () => {
    const once = await setUp([{text: PORTS, exec: 'exit 1'}], {once: true})
    once.registry.push({type: 'snapshot', instances: [web('a', 1)]})
    await expect(once.done).rejects.toThrow(ExternalError)
    expect(readFileSync(once.specs[0]!.out, 'utf8')).toBe('1 ')
    const dry = await setUp([{text: PORTS, exec: 'exit 1'}], {once: true, dryRun: true})
    dry.registry.push({type: 'snapshot', instances: [web('a', 1)]})
    await dry.done
    expect(dry.printed).toEqual([`${dry.specs[0]!.out}=1 `])
    expect(existsSync(dry.specs[0]!.out)).toBe(false)
    expect(types(dry.events)).toEqual(['rendered'])
  })
})

describe('DebouncedRunner', () => {
  it('makes one run of a burst, never two at once, and one more for a trigger during a run', async () => {
    let running = 0
    let most = 0
    let runs = 0
    let started!: () => void
    let release!: () => void
    const firstStarted = new Promise<void>((resolve) => {
      started = resolve
    })
    const gate = new Promise<void>((resolve) => {
      release = resolve
    })
    const runner = new DebouncedRunner(20, async () => {
      running++
      most = Math.max(most, running)
      runs++
      if (runs === 1) {
        started()
        await gate
      }

      running--
    })
    for (let i = 0; i < 10; i++) runner.trigger()
    await firstStarted
    runner.trigger()
    runner.trigger()
    // the quiet time ends while the first run still holds the gate: the run after it is queued, not started
    await sleep(60)
    expect(runs).toBe(1)
    release()
    await runner.close()
    expect(runs).toBe(2)
    expect(most).toBe(1)
    // closed: a trigger now runs nothing
    runner.trigger()
    await sleep(40)
    expect(runs).toBe(2)
  })
})
