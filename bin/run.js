#!/usr/bin/env node
// subpath imports load less of oclif than its index: start-up time
import {execute} from '@oclif/core/execute'

await execute({dir: import.meta.url})
