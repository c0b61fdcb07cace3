import * as Args from '@oclif/core/args'

import {SvcCommand} from '../../base-command.js'
import {configKey, configKeyArg, editProfileFlag, parseConfigValue} from '../../config-flags.js'
import {configPath, DEFAULT_PROFILE_KEY, loadConfig, saveConfig, setValue} from '../../lib/config/index.js'

export default class ConfigSet extends SvcCommand<typeof ConfigSet> {
  static summary = 'Save a backend setting, for every command or in a named profile.'
  static description = `KEY is a backend flag's name (backend, token, ...) or default-profile. Saved in \${XDG_CONFIG_HOME:-~/.config}/svc/config.json (mode 0600).
Precedence: a flag beats its environment variable, which beats the profile (--profile, SVC_PROFILE or default-profile), which beats the shared settings.`

  static examples = [
    '<%= config.bin %> config set backend zk://zk1:2181,zk2:2181/services',
    '<%= config.bin %> config set backend consul://consul1:8500 --profile prod',
    '<%= config.bin %> config set token s3cr3t --profile prod',
    '<%= config.bin %> config set default-profile prod',
  ]

  static flags = {profile: editProfileFlag}
  static args = {
    key: configKeyArg,
    value: Args.string({description: 'the value, as the flag would take it', required: true}),
  }

  async run(): Promise<{file: string; key: string; profile?: string}> {
    const {profile} = this.flags
    const key = configKey(this.args.key)
    if (key !== DEFAULT_PROFILE_KEY) await parseConfigValue(key, this.args.value, this)
    const file = configPath()
    saveConfig(setValue(loadConfig(file), key, this.args.value, profile), file)
    this.warnLine(`set ${key}${profile === undefined ? '' : ` in profile ${profile}`} in ${file}`)
    return {file, key, profile}
  }
}
