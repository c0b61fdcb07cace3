import {SvcCommand} from '../../base-command.js'
import {type ConfigRow, configPath, listRows, loadConfig} from '../../lib/config/index.js'
import {renderTable} from '../../lib/render/table.js'

export default class ConfigList extends SvcCommand<typeof ConfigList> {
  static summary = 'List the saved settings and profiles (secrets such as tokens are shown as ***).'
  static examples = ['<%= config.bin %> config list', '<%= config.bin %> config list --json']

  static enableJsonFlag = true

  async run(): Promise<{file: string; settings: ConfigRow[]}> {
    const file = configPath()
    const settings = listRows(loadConfig(file))
    if (!this.jsonEnabled()) {
      if (settings.length === 0) this.warnLine(`nothing saved in ${file}; see: svc config set --help`)
      else
        this.log(
          await renderTable(
            ['PROFILE', 'KEY', 'VALUE'],
            settings.map((row) => [row.profile || '(all)', row.key, row.value]),
            Boolean(process.stdout.isTTY),
          ),
        )
    }

    return {file, settings}
  }
}
