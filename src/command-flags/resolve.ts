import * as Flags from '@oclif/core/flags'

import {PICK_STRATEGIES} from '../lib/balancer/pick.js'

/** `svc resolve`'s flags; `--pick` alone means random (see withPickDefault). */
export const resolveFlags = {
  tag: Flags.string({
    char: 't',
    description: 'only instances with this tag (repeatable: all must match)',
    multiple: true,
  }),
  all: Flags.boolean({description: 'include unhealthy instances'}),
  pick: Flags.string({
    description: `print one address:port [strategy: ${PICK_STRATEGIES.join(', ')}; default random]`,
    options: [...PICK_STRATEGIES],
  }),
}
