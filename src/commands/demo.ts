import * as Flags from '@oclif/core/flags'

import {SvcCommand} from '../base-command.js'
import {hiddenBackendFlags} from '../config-flags.js'
import {durationFlag} from '../flags.js'
import {jsonRenderer, plainRenderer} from '../lib/demo/format.js'
import {DemoFeed, runDemo} from '../lib/demo/runner.js'
import {DEMO_DEFAULTS, type DemoOptions} from '../lib/demo/types.js'
import {isInteractive} from '../lib/tty.js'

export default class Demo extends SvcCommand<typeof Demo> {
  static summary = 'A guided tour: instances, resolve, proxy, a stop under load, clean-up. No server, no Docker.'
  static description = `Runs on a fresh temporary local registry (never your own): starts small HTTP instances as child processes that register themselves, resolves them, starts the proxy and sends requests through it, stops one instance while requests keep coming (the route table shrinks, no request fails), and removes everything it made. Each step says what it shows and which svc command does the same.
On a terminal it is a paced walkthrough; otherwise plain text (--json: one JSON object per step). Exit status 0 when every step turned out as expected. Ctrl-C stops it and cleans up.`

  static examples = ['<%= config.bin %> demo', '<%= config.bin %> demo --fast', '<%= config.bin %> demo --json | jq .']

  // the demo always uses its own temporary registry: the backend flags are accepted (SVC_BACKEND may be set) but hidden
  static baseFlags = hiddenBackendFlags

  static flags = {
    fast: Flags.boolean({description: 'no pauses between steps', exclusive: ['pace']}),
    pace: durationFlag({description: 'pause between steps [default: 1.5s on a terminal, none otherwise]'}),
    instances: Flags.integer({description: 'instances to start', default: DEMO_DEFAULTS.instances, min: 2, max: 9}),
    requests: Flags.integer({
      description: 'requests to send through the proxy',
      default: DEMO_DEFAULTS.requests,
      min: 10,
      max: 2000,
    }),
    json: Flags.boolean({description: 'one JSON object per step result (NDJSON), then one with the outcome'}),
  }

  async run(): Promise<void> {
    const {flags} = this
    const interactive = !flags.json && isInteractive()
    if (this.argv.some((a) => a === '-b' || a.startsWith('--backend')))
      this.warnLine('--backend is ignored: the demo runs on its own temporary local registry')
    const controller = new AbortController()
    const view = new AbortController()
    const stop = (): void => controller.abort()
    const hangUp = (): void => {
      view.abort()
      controller.abort()
    }

    // `on`, not `once`: a second Ctrl-C must not end the process in the middle of its clean-up
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
    process.on('SIGHUP', hangUp)
    // a closed terminal (EIO) or pipe (EPIPE) must not end it either (oclif's own handler rethrows EIO): the
    // clean-up runs with nobody watching
    const handlers = process.stdout.listeners('error') as Array<(error: Error) => void>
    process.stdout.removeAllListeners('error')
    process.stdout.on('error', ignore)
    process.stderr.on('error', ignore)
    const opts: DemoOptions = {
      ...DEMO_DEFAULTS,
      instances: flags.instances,
      requests: flags.requests,
      paceMs: flags.fast ? 0 : (flags.pace ?? (interactive ? DEMO_DEFAULTS.paceMs : 0)),
      signal: controller.signal,
    }
    try {
      if (interactive) {
        const feed = new DemoFeed()
        const {renderDemo} = await import('../lib/ui/demo.js')
        const drawn = renderDemo(feed, {signal: view.signal})
        try {
          await runDemo(opts, (event) => feed.push(event))
        } finally {
          await drawn
        }

        return
      }

      const render = flags.json ? jsonRenderer() : plainRenderer()
      await runDemo(opts, (event) => {
        const text = render(event)
        if (text !== undefined) process.stdout.write(text + '\n')
      })
    } finally {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
      process.off('SIGHUP', hangUp)
      // after a hang-up every later write fails too: keep ignoring them to the end
      if (!view.signal.aborted) {
        process.stdout.off('error', ignore)
        process.stderr.off('error', ignore)
        for (const handler of handlers) process.stdout.on('error', handler)
      }
    }
  }
}

function ignore(): void {}
