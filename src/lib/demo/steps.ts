import {existsSync} from 'node:fs'
import {rm} from 'node:fs/promises'
import http from 'node:http'
import {connect} from 'node:net'
import {setTimeout as sleep} from 'node:timers/promises'

import {errorMessage} from '../errors.js'
import {valueOf} from '../metrics/registry.js'
import {type RunningProxy, runProxy} from '../proxy/index.js'
import type {RouteSnapshot} from '../proxy/routes.js'
import {renderInstances, renderTable} from '../render/table.js'
import type {Registry} from '../registry/types.js'
import {resolveInstances} from '../resolve.js'
import {type DemoInstance, processExists, startInstance} from './fleet.js'
import {spreadChart, spreadText} from './format.js'
import {Traffic} from './traffic.js'
import type {DemoOptions, StepId, StepResult} from './types.js'

/** What the steps share: the temporary registry, the instances and the proxy, as they come up. */
export interface DemoContext {
  readonly opts: DemoOptions
  readonly dir: string
  readonly backend: string
  readonly registry: Registry
  readonly instances: DemoInstance[]
  proxy?: RunningProxy
  /** Clean-up has begun: a step still winding down must not start anything more. */
  cleaning?: boolean
  registryClosed?: boolean
}

/** How a step reports while it runs. */
export interface StepIO {
  command(text: string): void
  output(text: string): void
  progress(text: string): void
}

/** One step of the tour: what it is called, what it shows, and the work (which checks its own outcome). */
export interface DemoStep {
  id: StepId
  title: string
  shows: string
  /** Resolves with the outcome when it is as expected; throws a StepFailure (or any error) otherwise. */
  run(ctx: DemoContext, io: StepIO): Promise<StepResult>
}

/** The outcome of a step was not what the tour promises. */
export class StepFailure extends Error {
  override name = 'StepFailure'
}

function check(condition: boolean, message: string): asserts condition {
  if (!condition) throw new StepFailure(message)
}

const WAIT_MS = 10_000

/** The five steps, in order; clean-up is last and always runs. */
export function demoSteps(opts: DemoOptions): DemoStep[] {
  const {service} = opts
  return [
    {
      id: 'register',
      title: `Start ${opts.instances} instances of "${service}" and register them`,
      shows:
        'Each instance is a small HTTP server in its own process that registers itself the way `svc register` does: ' +
        'one file per instance in the registry, kept alive by heartbeats, removed when the process is stopped.',
      run: registerStep,
    },
    {
      id: 'resolve',
      title: `Resolve "${service}"`,
      shows: 'A lookup answers with the healthy instances, read straight from the registry: what a client would call.',
      run: resolveStep,
    },
    {
      id: 'proxy',
      title: `Send ${opts.requests} requests through the proxy`,
      shows:
        'The proxy keeps a route table fed by the registry watch; /<service>/<path> goes to an instance of <service>. ' +
        'Each instance answers with its id, so the spread (round-robin) is visible.',
      run: proxyStep,
    },
    {
      id: 'stop-one',
      title: 'Stop one instance while requests keep coming',
      shows:
        'On SIGTERM an instance deregisters first, then finishes its requests and exits. The watch sees it go, ' +
        "the proxy's route table drops it, and the clients see no failed request (idempotent requests that hit a " +
        'closing connection are retried on another instance).',
      run: stopOneStep,
    },
    {
      id: 'cleanup',
      title: 'Clean up',
      shows:
        'The proxy drains and stops, the other instances deregister and exit, and the temporary registry is removed; ' +
        'the demo checks that no process, registration or file is left.',
      run: cleanupStep,
    },
  ]
}

async function registerStep(ctx: DemoContext, io: StepIO): Promise<StepResult> {
  const {dir, opts} = ctx
  for (let i = 1; i <= opts.instances && !ctx.cleaning; i++) {
    ctx.instances.push(startInstance({dir, service: opts.service, id: `${opts.service}-${i}`, graceMs: opts.graceMs}))
  }

  await Promise.all(ctx.instances.map((instance) => instance.registered(WAIT_MS)))
  for (const instance of ctx.instances)
    io.command(`svc register ${opts.service} --port ${instance.instance.port} --id ${instance.id}`)
  io.output(
    await renderTable(
      ['ID', 'ADDRESS', 'PID'],
      ctx.instances.map((i) => [i.id, i.address, String(i.pid)]),
      false,
    ),
  )
  const listed = await ctx.registry.listInstances(opts.service)
  check(
    listed.length === opts.instances,
    `the registry lists ${listed.length} instances of ${opts.service}, expected ${opts.instances}`,
  )
  return {
    summary: `${opts.instances} instances registered: ${ctx.instances.map((i) => `${i.id} on :${i.instance.port}`).join(', ')}`,
    data: {instances: ctx.instances.map((i) => ({id: i.id, address: i.address, pid: i.pid}))},
  }
}

async function resolveStep(ctx: DemoContext, io: StepIO): Promise<StepResult> {
  const {service} = ctx.opts
  io.command(`svc resolve ${service}`)
  const found = await resolveInstances(ctx.registry, service)
  io.output(await renderInstances(found, false))
  check(
    found.length === ctx.opts.instances,
    `resolve found ${found.length} healthy instances, expected ${ctx.opts.instances}`,
  )
  return {
    summary: `${found.length} healthy instances of ${service}`,
    data: {resolved: found.map((i) => ({id: i.id, address: `${i.address}:${i.port}`, health: i.health}))},
  }
}

async function proxyStep(ctx: DemoContext, io: StepIO): Promise<StepResult> {
  const {opts} = ctx
  const proxy = await runProxy(ctx.registry, {
    host: '127.0.0.1',
    port: 0,
    strategy: 'round-robin',
    connectTimeoutMs: 1000,
    timeoutMs: 5000,
    admin: {host: '127.0.0.1', port: 0},
    startTimeoutMs: WAIT_MS,
    log: (line) => io.output(`proxy: ${line}`),
  })
  if (ctx.cleaning) {
    await proxy.stop(0)
    throw new StepFailure('interrupted')
  }

  ctx.proxy = proxy
  const {address, adminAddress} = proxy
  io.command(`svc proxy --listen ${address} --admin-listen ${adminAddress}`)
  io.command(`curl http://${address}/${opts.service}/`)
  const routes = await waitForRoutes(ctx, (r) => r?.available === opts.instances)
  check(routes?.available === opts.instances, `the proxy has ${routes?.available ?? 0} instances in rotation`)

  const ids = ctx.instances.map((i) => i.id)
  const traffic = new Traffic({
    url: `http://${address}/${opts.service}/`,
    max: opts.requests,
    concurrency: 2,
    maxMs: 20_000,
    timeoutMs: 5000,
    signal: opts.signal,
    onAnswer: (r) => io.progress(`${r.ok + r.failed}/${opts.requests} answered: ${spreadText(r.byInstance, ids)}`),
  }).start()
  const result = await traffic.finished()
  io.output(spreadChart(result.byInstance, ids))
  check(result.failed === 0, `${result.failed} of ${result.sent} requests failed: ${result.failures.join('; ')}`)
  check(result.ok === opts.requests, `only ${result.ok} of ${opts.requests} requests were answered in time`)
  const idle = ids.filter((id) => !result.byInstance[id])
  check(idle.length === 0, `no request reached ${idle.join(', ')}`)
  return {
    summary: `${result.ok} requests, 0 failed, spread ${spreadText(result.byInstance, ids)} over ${ids.length} instances`,
    data: {
      proxy: address,
      admin: adminAddress,
      sent: result.sent,
      ok: result.ok,
      failed: result.failed,
      byInstance: result.byInstance,
    },
  }
}

async function stopOneStep(ctx: DemoContext, io: StepIO): Promise<StepResult> {
  const {opts, proxy} = ctx
  check(proxy !== undefined, 'the proxy is not running')
  // the middle one: the table visibly loses a row that is not at an end
  const victim = ctx.instances[Math.floor(ctx.instances.length / 2)]!
  const others = ctx.instances.filter((i) => i !== victim)
  const ids = ctx.instances.map((i) => i.id)
  const before = (await fetchRoutes(proxy.adminAddress!)).find((r) => r.service === opts.service)
  check(before?.available === opts.instances, `the proxy has ${before?.available ?? 0} instances in rotation`)

  const retriesBefore = await valueOf(proxy.proxy.metrics.retries, {service: opts.service})
  io.command(`svc watch ${opts.service}`)
  const watch = followRemovals(ctx.registry, opts.service)
  await watch.ready

  const traffic = new Traffic({
    url: `http://${proxy.address}/${opts.service}/`,
    max: 5000,
    concurrency: 4,
    maxMs: 20_000,
    timeoutMs: 5000,
    signal: opts.signal,
    onAnswer: (r) => io.progress(`${r.sent} sent, ${r.failed} failed: ${spreadText(r.byInstance, ids)}`),
  }).start()
  try {
    // some traffic on every instance first
    await waitFor(() => traffic.result.ok >= opts.instances * 5, 5000)
    io.command(`kill -TERM ${victim.pid}    # ${victim.id}; svc register deregisters on SIGTERM the same way`)
    io.command(`curl http://${proxy.adminAddress}/routes`)
    const t0 = Date.now()
    const stopped = victim.stop(5000)
    // each line is printed as it is observed: they arrive in the order things happen
    const deregistered = within(victim.deregistered(), 5000).then((at) => {
      if (at !== undefined) io.output(timeline(at - t0, `${victim.id} deregistered itself`))
      return at
    })
    const watched = within(watch.removed(victim.id), 5000).then((at) => {
      if (at !== undefined) io.output(timeline(at - t0, `svc watch: removed ${victim.id} ${victim.address}`))
      return at
    })
    const routed = waitForRoutes(
      ctx,
      (r) => r?.available === opts.instances - 1 && !r.instances.some((i) => i.id === victim.id),
    ).then((route) => {
      const at = Date.now()
      if (route?.available === opts.instances - 1)
        io.output(
          timeline(
            at - t0,
            `/routes: ${opts.service} ${before.available} → ${route.available} in rotation (${route.instances.map((i) => i.id).join(', ')})`,
          ),
        )
      return {after: route, changedAt: at}
    })
    const [deregisteredAt, removed, {after, changedAt}] = await Promise.all([deregistered, watched, routed])
    check(deregisteredAt !== undefined, `${victim.id} did not deregister within 5 s of SIGTERM`)
    check(removed !== undefined, `the watch did not report ${victim.id} removed within 5 s`)
    check(after?.available === opts.instances - 1, `the proxy still has ${after?.available ?? 0} instances in rotation`)
    const exitedByItself = await stopped
    const exitMs = Date.now() - t0
    check(exitedByItself && victim.exitCode === 0, `${victim.id} did not exit cleanly (had to be killed)`)
    io.output(timeline(exitMs, `${victim.id} exited with status 0 (pid ${victim.pid})`))

    // traffic goes on a little after the exit: nothing is routed to the stopped instance any more
    await sleep(300, undefined, {signal: opts.signal})
    const result = await traffic.stop()
    const late = result.log.filter((r) => r.instance === victim.id && r.sentAt > changedAt).length
    const retries = (await valueOf(proxy.proxy.metrics.retries, {service: opts.service})) - retriesBefore
    io.output(spreadChart(result.byInstance, ids))
    io.output(
      `${result.sent} requests, ${result.failed} failed; ${late} sent to ${victim.id} after the route change; proxy retries: ${retries}`,
    )
    check(result.failed === 0, `${result.failed} of ${result.sent} requests failed: ${result.failures.join('; ')}`)
    check(late === 0, `${late} requests reached ${victim.id} after the proxy dropped it`)
    const starved = others.filter((i) => !result.byInstance[i.id])
    check(starved.length === 0, `no request reached ${starved.map((i) => i.id).join(', ')}`)
    return {
      summary: `${victim.id} stopped under load: route table ${before.available} → ${after.available}, ${result.failed} of ${result.sent} requests failed`,
      data: {
        stopped: victim.id,
        pid: victim.pid,
        routesBefore: before.available,
        routesAfter: after.available,
        sent: result.sent,
        failed: result.failed,
        byInstance: result.byInstance,
        retries,
        watchMs: removed - t0,
        routesMs: changedAt - t0,
        exitMs,
      },
    }
  } finally {
    await traffic.stop()
    watch.stop()
  }
}

async function cleanupStep(ctx: DemoContext, io: StepIO): Promise<StepResult> {
  ctx.cleaning = true
  const {proxy, opts} = ctx
  const problems: string[] = []
  let proxyClosed = true
  if (proxy) {
    io.command(`kill -TERM <svc proxy>    # it drains: requests in flight finish`)
    const cut = await proxy.stop(2000)
    ctx.proxy = undefined
    proxyClosed = await refused(proxy.address)
    io.output(
      `proxy:      stopped (${cut} requests cut), ${proxy.address} ${proxyClosed ? 'refuses connections' : 'still answers'}`,
    )
    if (!proxyClosed) problems.push(`the proxy still listens on ${proxy.address}`)
  }

  const running = ctx.instances.filter((i) => i.running)
  if (running.length > 0) io.command(`kill -TERM ${running.map((i) => i.pid).join(' ')}`)
  const stopped = await Promise.all(running.map(async (i) => ({i, clean: await i.stop(5000)})))
  for (const {i, clean} of stopped) if (!clean) problems.push(`${i.id} had to be killed`)
  const left = ctx.instances.filter((i) => processExists(i.pid))
  if (left.length > 0) problems.push(`processes still running: ${left.map((i) => i.pid).join(', ')}`)
  if (ctx.instances.length > 0)
    io.output(
      `processes:  ${ctx.instances.map((i) => `${i.id} (pid ${i.pid})`).join(', ')}: ${left.length === 0 ? 'all gone' : `${left.length} left`}`,
    )

  io.command('svc resolve')
  let registrations = 0
  try {
    registrations = (await ctx.registry.listServices()).reduce((n, s) => n + s.instances, 0)
  } catch (error) {
    problems.push(`could not read the registry: ${errorMessage(error)}`)
  }

  io.output(`registry:   ${registrations === 0 ? 'no services registered' : `${registrations} registrations left`}`)
  if (registrations > 0) problems.push(`${registrations} registrations left`)
  await ctx.registry.close()
  ctx.registryClosed = true

  io.command(`rm -r ${ctx.dir}`)
  await rm(ctx.dir, {recursive: true, force: true, maxRetries: 3})
  const dirRemoved = !existsSync(ctx.dir)
  io.output(`temp dir:   ${dirRemoved ? 'removed' : 'still there'}`)
  if (!dirRemoved) problems.push(`${ctx.dir} is still there`)

  check(problems.length === 0, problems.join('; '))
  return {
    summary: `nothing left: proxy stopped, ${ctx.instances.length} instance processes gone, 0 registrations, temp registry removed`,
    data: {
      pids: ctx.instances.map((i) => i.pid),
      processesLeft: left.length,
      registrationsLeft: registrations,
      proxyClosed,
      dir: ctx.dir,
      dirRemoved,
      service: opts.service,
    },
  }
}

function deferred(): {promise: Promise<void>; resolve: () => void} {
  let resolve!: () => void
  const promise = new Promise<void>((r) => {
    resolve = r
  })
  return {promise, resolve}
}

/** The registry watch of one service, recording when each instance is removed. */
function followRemovals(registry: Registry, service: string) {
  const controller = new AbortController()
  const removedAt = new Map<string, number>()
  const waiters = new Map<string, (at: number) => void>()
  const {promise: ready, resolve: snapshot} = deferred()
  const done = (async () => {
    for await (const event of registry.watch(service, {signal: controller.signal})) {
      if (event.type === 'snapshot') snapshot()
      if (event.type !== 'removed') continue
      const at = Date.now()
      removedAt.set(event.instance.id, at)
      waiters.get(event.instance.id)?.(at)
    }
  })().catch(() => {})
  return {
    ready: Promise.race([ready, done]),
    removed(id: string): Promise<number> {
      const at = removedAt.get(id)
      if (at !== undefined) return Promise.resolve(at)
      return new Promise((resolve) => {
        waiters.set(id, resolve)
      })
    },
    stop: () => controller.abort(),
  }
}

async function fetchRoutes(admin: string): Promise<RouteSnapshot[]> {
  return new Promise((resolve, reject) => {
    const request = http.get(`http://${admin}/routes`, {agent: false, timeout: 2000}, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => {
        body += chunk
      })
      response.once('end', () => {
        try {
          resolve(JSON.parse(body) as RouteSnapshot[])
        } catch (error) {
          reject(error)
        }
      })
    })
    request.once('timeout', () => request.destroy(new Error('/routes did not answer within 2 s')))
    request.once('error', reject)
  })
}

/** Polls the proxy's /routes until the service's route satisfies `ok` (bounded); resolves with the last seen. */
async function waitForRoutes(
  ctx: DemoContext,
  ok: (route: RouteSnapshot | undefined) => boolean,
): Promise<RouteSnapshot | undefined> {
  const deadline = Date.now() + 5000
  let route: RouteSnapshot | undefined
  for (;;) {
    route = (await fetchRoutes(ctx.proxy!.adminAddress!)).find((r) => r.service === ctx.opts.service)
    if (ok(route) || Date.now() > deadline || ctx.opts.signal?.aborted) return route
    await sleep(10)
  }
}

/** One line of the stop's timeline: time since SIGTERM, then what happened. */
function timeline(ms: number, what: string): string {
  return `${`+${ms} ms`.padEnd(9)} ${what}`
}

/** The promise's value, or undefined when it takes longer than `ms`. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms)
  })
  try {
    return await Promise.race([promise, late])
  } finally {
    clearTimeout(timer)
  }
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition() && Date.now() < deadline) await sleep(10)
}

/** Whether a TCP connect to host:port is refused (nothing listens there any more). */
function refused(hostPort: string): Promise<boolean> {
  const i = hostPort.lastIndexOf(':')
  return new Promise((resolve) => {
    const socket = connect({host: hostPort.slice(0, i), port: Number(hostPort.slice(i + 1))})
    socket.setTimeout(2000)
    socket.once('connect', () => {
      socket.destroy()
      resolve(false)
    })
    socket.once('timeout', () => {
      socket.destroy()
      resolve(false)
    })
    socket.once('error', () => resolve(true))
  })
}
