#!/usr/bin/env node
import module from 'node:module'

// compiled code cached on disk where Node has it (22.1+): start-up time; before the imports below, so it covers them
// eslint-disable-next-line n/no-unsupported-features/node-builtins -- absent on Node 20, hence the optional call
module.enableCompileCache?.()
// the bundle (scripts/bundle.mjs) carries oclif's core: one file to load where the package graph is about a hundred
const {runCli, settings} = await import('../dist/cli/cli.js')
// the bundle is compiled code with no TypeScript source beside it: under NODE_ENV=test or development oclif would
// look for one and warn on stderr that it found none
settings.enableAutoTranspile = false

await runCli(import.meta.url)
