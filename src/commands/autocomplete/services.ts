import {completionServiceNames} from '../../lib/completion/services.js'
import {RegistryCommand} from '../../registry-command.js'

export default class AutocompleteServices extends RegistryCommand<typeof AutocompleteServices> {
  static summary = 'Print the registered service names, one a line, for shell completion (silent when slow).'
  static hidden = true

  async run(): Promise<void> {
    const names = await completionServiceNames(() => this.registry())
    if (names === undefined) {
      // the registry did not answer within the budget: print nothing, and do not wait for its connection to give up
      process.exit(0)
    }

    if (names.length > 0) this.log(names.join('\n'))
  }
}
