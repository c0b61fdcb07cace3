import * as Flags from '@oclif/core/flags'

import {durationDefault, durationFlag} from '../flags.js'
import {formatTemplateEvent} from '../lib/template/format.js'
import {loadTemplates} from '../lib/template/load.js'
import {runTemplates} from '../lib/template/runner.js'
import {templateSpecs} from '../lib/template/spec.js'
import {RegistryCommand} from '../registry-command.js'

export default class Template extends RegistryCommand<typeof Template> {
  static summary = 'Render files from the registry and run a command when they change (consul-template style).'
  static description = `Renders each Handlebars template from one watch of all services, on start and after every change (debounced), and writes its output atomically when its bytes change; then runs that output's --exec command (one at a time; a failure is reported and the next change tries again).
Several templates: repeat --template IN --out OUT [--exec CMD] (each --out and --exec belongs to the --template before it), or --template IN:OUT[:CMD] as consul-template takes it.
Helpers: services, service "name" (healthy instances; "tag.name", tag=, health=any), byTag, sortBy, join, contains, eq, default, env, toJSON; {{#each}}...{{else}}...{{/each}} for no instances (docs/template.md).
--json: one JSON object per event (rendered, exec, error, watching, backend; docs/json.md).`

  static examples = [
    '<%= config.bin %> template --template examples/nginx/upstreams.conf.hbs --out /etc/nginx/conf.d/svc.conf --exec "nginx -s reload"',
    '<%= config.bin %> template --template upstreams.conf.hbs:/etc/nginx/conf.d/svc.conf:"nginx -s reload" -b consul',
    '<%= config.bin %> template --template hosts.hbs --out hosts.txt --once',
    '<%= config.bin %> template --template upstreams.conf.hbs --out svc.conf --dry-run --once',
  ]

  static enableJsonFlag = true
  // a flag with a short form first: oclif's help aligns the others to the first row
  static flags = {
    template: Flags.string({
      char: 't',
      description: 'template file (Handlebars), or IN:OUT[:CMD]; repeat for several',
      multiple: true,
      required: true,
    }),
    out: Flags.string({description: 'file the template before it renders to', multiple: true}),
    exec: Flags.string({description: 'command run (through the shell) when that output changes', multiple: true}),
    once: Flags.boolean({description: 'render once, run the commands, and exit'}),
    'dry-run': Flags.boolean({description: 'print the rendered text on stdout; write nothing, run nothing'}),
    debounce: durationFlag({description: 'quiet time after a change before rendering', ...durationDefault(200)}),
    'exec-timeout': durationFlag({description: 'kill a command that runs longer', ...durationDefault(30_000)}),
  }

  async run(): Promise<void> {
    const {flags} = this
    const json = this.jsonEnabled()
    const templates = await loadTemplates(templateSpecs(this.argvFlagTokens), {dryRun: flags['dry-run']})
    const registry = await this.registry()
    await runTemplates(registry, {
      templates,
      once: flags.once,
      dryRun: flags['dry-run'],
      debounceMs: flags.debounce,
      execTimeoutMs: flags['exec-timeout'],
      signal: this.untilSignal(),
      event: (event) => (json ? this.jsonLine(event) : this.warnLine(formatTemplateEvent(event))),
      print: (out, content) =>
        json || process.stdout.write(`> ${out}\n${content}${content.endsWith('\n') ? '' : '\n'}`),
    })
  }
}
