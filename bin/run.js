#!/usr/bin/env node
import module from 'node:module'

// compiled code cached on disk where Node has it (22.1+): start-up time; before the imports below, so it covers them
// eslint-disable-next-line n/no-unsupported-features/node-builtins -- absent on Node 20, hence the optional call
module.enableCompileCache?.()
// subpath imports load less of oclif than its index: start-up time
const {execute} = await import('@oclif/core/execute')

await execute({dir: import.meta.url})
