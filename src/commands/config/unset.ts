import * as Args from '@oclif/core/args'

import {SvcCommand} from '../../base-command.js'
import {CONFIG_KEYS, editProfileFlag, hiddenBackendFlags} from '../../config-flags.js'
import {
  configPath,
  DEFAULT_PROFILE_KEY,
  loadConfig,
  saveConfig,
  unsetValue,
  validateKey,
} from '../../lib/config/index.js'

export default class ConfigUnset extends SvcCommand<typeof ConfigUnset> {
  static summary = 'Remove a saved setting; a profile left empty is removed.'
  static examples = [
    '<%= config.bin %> config unset token --profile prod',
    '<%= config.bin %> config unset default-profile',
  ]

  static baseFlags = hiddenBackendFlags
  static flags = {profile: editProfileFlag}
  static args = {
    key: Args.string({
      description: `${DEFAULT_PROFILE_KEY} or a backend flag: ${CONFIG_KEYS.join(', ')}`,
      required: true,
    }),
  }

  async run(): Promise<{file: string; key: string; profile?: string}> {
    const {profile} = this.flags
    const key = this.args.key === DEFAULT_PROFILE_KEY ? DEFAULT_PROFILE_KEY : validateKey(this.args.key, CONFIG_KEYS)
    const file = configPath()
    saveConfig(unsetValue(loadConfig(file), key, profile), file)
    this.warnLine(`unset ${key}${profile === undefined ? '' : ` in profile ${profile}`} in ${file}`)
    return {file, key, profile}
  }
}
