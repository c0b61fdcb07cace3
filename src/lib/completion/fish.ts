import {SERVICE_ARG_COMMANDS} from './scripts.js'

/** What the fish script needs of one command: its words, summary and flags. */
export interface FishCommand {
  id: string
  summary?: string
  flags: ReadonlyArray<{
    name: string
    char?: string
    summary?: string
    takesValue: boolean
    options?: readonly string[]
  }>
}

/** fish's quoting: single quotes, with \ and ' escaped (command ids, inside conditions, need none: words and spaces). */
function q(text: string): string {
  return `'${text.replaceAll('\\', '\\\\').replaceAll("'", String.raw`\'`)}'`
}

/**
 * A fish completion script for `bin`: commands and topics, each command's flags (with their listed values), and
 * service names from `svc autocomplete services` for the first argument of resolve/watch/deregister/kill-instance.
 */
export function fishScript(
  bin: string,
  commands: readonly FishCommand[],
  topics: ReadonlyArray<{name: string; description?: string}>,
): string {
  const ids = commands.map((c) => c.id.replaceAll(':', ' '))
  const out = [
    `# ${bin} completion for fish: ${bin} autocomplete fish > ~/.config/fish/completions/${bin}.fish`,
    `set -g __${bin}_ids ${ids.map((id) => q(id)).join(' ')}`,
    `# the words typed so far that are not flags, without the binary`,
    `function __${bin}_plain`,
    `  for w in (commandline -opc)[2..-1]`,
    `    string match -q -- '-*' $w; or echo $w`,
    `  end`,
    `end`,
    `# the longest known command the plain words start with`,
    `function __${bin}_command`,
    `  set -l plain (__${bin}_plain)`,
    `  set -l best ''`,
    `  for id in $__${bin}_ids`,
    `    set -l n (count (string split ' ' -- $id))`,
    `    test (count $plain) -ge $n; and test "$plain[1..$n]" = "$id"; and set best $id`,
    `  end`,
    `  echo $best`,
    `end`,
    `# true when the command is $argv[1] and $argv[2] arguments follow it`,
    `function __${bin}_at`,
    `  set -l n (count (string split ' ' -- $argv[1]))`,
    `  test (__${bin}_command) = $argv[1]; and test (math (count (__${bin}_plain)) - $n) -eq $argv[2]`,
    `end`,
    `complete -c ${bin} -f`,
  ]
  const top = new Map<string, string>()
  for (const c of commands) if (!c.id.includes(':')) top.set(c.id, c.summary ?? '')
  for (const t of topics) if (!t.name.includes(':')) top.set(t.name, t.description ?? '')
  for (const [name, description] of top) {
    out.push(`complete -c ${bin} -n 'test (count (__${bin}_plain)) -eq 0' -a ${q(name)} -d ${q(description)}`)
  }

  for (const c of commands) {
    const [topic, sub] = c.id.split(':')
    if (sub !== undefined) {
      out.push(`complete -c ${bin} -n 'test "$(__${bin}_plain)" = ${topic}' -a ${q(sub)} -d ${q(c.summary ?? '')}`)
    }

    const id = c.id.replaceAll(':', ' ')
    for (const f of c.flags) {
      const spelling = [`-l ${f.name}`, ...(f.char ? [`-s ${f.char}`] : [])].join(' ')
      const value = f.takesValue ? (f.options ? ` -x -a ${q(f.options.join(' '))}` : ' -r') : ''
      out.push(`complete -c ${bin} -n 'test (__${bin}_command) = "${id}"' ${spelling}${value} -d ${q(f.summary ?? '')}`)
    }
  }

  for (const id of SERVICE_ARG_COMMANDS) {
    const extra = id === 'watch' ? ' tree' : ''
    out.push(`complete -c ${bin} -n '__${bin}_at "${id}" 0' -a '(${bin} autocomplete services 2>/dev/null)${extra}'`)
  }

  return out.join('\n') + '\n'
}
