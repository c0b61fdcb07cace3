import * as Args from '@oclif/core/args'

import {SvcCommand} from '../../base-command.js'
import {CONFIG_KEYS, editProfileFlag, hiddenBackendFlags} from '../../config-flags.js'
import {DEFAULT_PROFILE_KEY, getValue, loadConfig, validateKey} from '../../lib/config/index.js'

export default class ConfigGet extends SvcCommand<typeof ConfigGet> {
  static summary = 'Print one saved setting (exit status 1 when it is not set).'
  static examples = ['<%= config.bin %> config get backend', '<%= config.bin %> config get backend --profile prod']

  static enableJsonFlag = true
  static baseFlags = hiddenBackendFlags
  static flags = {profile: editProfileFlag}
  static args = {
    key: Args.string({
      description: `${DEFAULT_PROFILE_KEY} or a backend flag: ${CONFIG_KEYS.join(', ')}`,
      required: true,
    }),
  }

  async run(): Promise<{key: string; profile?: string; value: string}> {
    const key = this.args.key === DEFAULT_PROFILE_KEY ? DEFAULT_PROFILE_KEY : validateKey(this.args.key, CONFIG_KEYS)
    const value = getValue(loadConfig(), key, this.flags.profile)
    if (!this.jsonEnabled()) this.log(value)
    return {key, profile: this.flags.profile, value}
  }
}
