import {SvcCommand} from '../../base-command.js'
import {configKey, configKeyArg, editProfileFlag} from '../../config-flags.js'
import {configPath, loadConfig, saveConfig, unsetValue} from '../../lib/config/index.js'

export default class ConfigUnset extends SvcCommand<typeof ConfigUnset> {
  static summary = 'Remove a saved setting; a profile left empty is removed.'
  static examples = [
    '<%= config.bin %> config unset token --profile prod',
    '<%= config.bin %> config unset default-profile',
  ]

  static flags = {profile: editProfileFlag}
  static args = {
    key: configKeyArg,
  }

  async run(): Promise<{file: string; key: string; profile?: string}> {
    const {profile} = this.flags
    const key = configKey(this.args.key)
    const file = configPath()
    saveConfig(unsetValue(loadConfig(file), key, profile), file)
    this.warnLine(`unset ${key}${profile === undefined ? '' : ` in profile ${profile}`} in ${file}`)
    return {file, key, profile}
  }
}
