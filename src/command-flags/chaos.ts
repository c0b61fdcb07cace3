import * as Flags from '@oclif/core/flags'

import {durationDefault, durationFlag} from '../flags.js'

// a flag with a short form first: oclif's help aligns the others to the first row
const yes = Flags.boolean({char: 'y', description: 'do not ask for confirmation'})

/** `svc chaos kill-instance`'s flags. */
export const killInstanceFlags = {
  count: Flags.integer({char: 'n', description: 'instances to stop', default: 1, min: 1}),
  signal: Flags.string({description: 'how to stop them', options: ['KILL', 'TERM'], default: 'KILL'}),
  proxy: Flags.string({description: 'URL to load during the drill (e.g. through svc proxy)'}),
  rate: Flags.integer({description: 'requests per second with --proxy', default: 20, min: 1, max: 500}),
  'max-requests': Flags.integer({description: 'hard cap on requests with --proxy', default: 2000, min: 1}),
  timeout: durationFlag({description: 'bound on waiting for the instances to leave', ...durationDefault(90_000)}),
  yes,
}

/** `svc chaos kill-leader`'s flags. */
export const killLeaderFlags = {
  yes,
  cluster: Flags.string({
    description: 'a cluster started by "svc cluster up" (instead of --backend)',
    exclusive: ['backend'],
  }),
  signal: Flags.string({description: 'how to stop the leader', options: ['KILL', 'TERM', 'STOP'], default: 'KILL'}),
  'restart-after': durationFlag({
    description: 'bring the member back this long after the fault, and measure its rejoin',
  }),
  timeout: durationFlag({
    description: 'bound on each wait (new leader, registrations, rejoin)',
    ...durationDefault(60_000),
  }),
}
