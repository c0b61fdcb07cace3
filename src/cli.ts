// The CLI's entry in the bundle (scripts/bundle.mjs): oclif's core travels inside it, so start-up reads one file
// where it would resolve and read about a hundred.
export {execute} from '@oclif/core/execute'
export {settings} from '@oclif/core/settings'
