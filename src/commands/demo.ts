import * as Flags from '@oclif/core/flags'

import {SvcCommand} from '../base-command.js'
import {hiddenBackendFlags} from '../config-flags.js'
import {durationFlag} from '../flags.js'
import {runDemoSession} from '../lib/demo/session.js'
import {DEMO_DEFAULTS} from '../lib/demo/types.js'
import {isInteractive} from '../lib/tty.js'

export default class Demo extends SvcCommand<typeof Demo> {
  static summary = 'A guided tour: instances, resolve, proxy, a stop under load, clean-up. No server, no Docker.'
  static description = `Runs on a fresh temporary local registry (never your own): starts small HTTP instances as child processes that register themselves, resolves them, starts the proxy and sends requests through it, stops one instance while requests keep coming (the route table shrinks, no request fails), and removes everything it made. Each step says what it shows and which svc command does the same.
On a terminal it is a paced walkthrough; otherwise plain text (--json: one JSON object per step, then one with the outcome; docs/json.md). Exit status 0 when every step turned out as expected. Ctrl-C stops it and cleans up.`

  static examples = ['<%= config.bin %> demo', '<%= config.bin %> demo --fast', '<%= config.bin %> demo --json | jq .']

  static enableJsonFlag = true
  // the demo always uses its own temporary registry: the backend flags are accepted (SVC_BACKEND may be set) but hidden
  static baseFlags = {...SvcCommand.baseFlags, ...hiddenBackendFlags}
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
  }

  async run(): Promise<void> {
    const {flags} = this
    const interactive = !this.jsonEnabled() && isInteractive()
    if (this.argvFlags.has('backend'))
      this.warnLine('--backend is ignored: the demo runs on its own temporary local registry')
    const paceMs = flags.fast ? 0 : (flags.pace ?? (interactive ? DEMO_DEFAULTS.paceMs : 0))
    const options = {...DEMO_DEFAULTS, instances: flags.instances, requests: flags.requests, paceMs}
    await runDemoSession({options, interactive, json: this.jsonEnabled(), signal: this.untilSignal()})
  }
}
