import {SvcCommand} from '../../base-command.js'
import {fishScript} from '../../lib/completion/fish.js'

export default class AutocompleteFish extends SvcCommand<typeof AutocompleteFish> {
  static summary = 'Print a fish completion script (commands, flags and service names).'
  static description =
    'bash, zsh and powershell: svc autocomplete SHELL (@oclif/plugin-autocomplete); fish: this command.'
  static examples = ['<%= config.bin %> autocomplete fish > ~/.config/fish/completions/svc.fish']

  async run(): Promise<void> {
    const commands = this.config.commands
      .filter((c) => !c.hidden)
      .map((c) => ({
        id: c.id,
        summary: c.summary ?? c.description?.split('\n')[0],
        flags: Object.values(c.flags)
          .filter((f) => !f.hidden)
          .map((f) => ({
            name: f.name,
            char: f.char,
            summary: f.summary ?? f.description?.split('\n')[0],
            takesValue: f.type === 'option',
            options: f.type === 'option' ? f.options : undefined,
          })),
      }))
    process.stdout.write(fishScript(this.config.bin, commands, this.config.topics))
  }
}
