import * as Flags from '@oclif/core/flags'

import {durationDefault, durationFlag, portFlag} from '../flags.js'

/** `svc cluster up`'s flags: --backend names the servers to run, not a registry to use. */
export const clusterUpFlags = {
  backend: Flags.string({
    char: 'b',
    description: 'which servers to run',
    options: ['zk', 'etcd', 'consul'],
    required: true,
  }),
  nodes: Flags.integer({char: 'n', description: 'members (3 or 5 make sense)', default: 3, min: 1, max: 9}),
  name: Flags.string({description: 'cluster name [default: the backend]'}),
  'base-port': portFlag({description: 'consecutive ports from here [default: free ports]'}),
  timeout: durationFlag({description: 'bound on starting and electing a leader', ...durationDefault(90_000)}),
}
