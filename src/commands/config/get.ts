import {SvcCommand} from '../../base-command.js'
import {configKey, configKeyArg, editProfileFlag} from '../../config-flags.js'
import {getValue, loadConfig} from '../../lib/config/index.js'

export default class ConfigGet extends SvcCommand<typeof ConfigGet> {
  static summary = 'Print one saved setting (exit status 1 when it is not set).'
  static examples = ['<%= config.bin %> config get backend', '<%= config.bin %> config get backend --profile prod']

  static enableJsonFlag = true
  static flags = {profile: editProfileFlag}
  static args = {
    key: configKeyArg,
  }

  async run(): Promise<{key: string; profile?: string; value: string}> {
    const key = configKey(this.args.key)
    const value = getValue(loadConfig(), key, this.flags.profile)
    if (!this.jsonEnabled()) this.log(value)
    return {key, profile: this.flags.profile, value}
  }
}
