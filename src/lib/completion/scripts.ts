/** Commands whose first argument is a service name (a space-separated command id). */
export const SERVICE_ARG_COMMANDS = ['resolve', 'watch', 'deregister', 'chaos kill-instance'] as const

const MARKER = '# svc: service-name completion'

/** A flag of those commands that takes a value: its spellings, and its allowed values when it has a list. */
export interface ValueFlag {
  names: readonly string[]
  options?: readonly string[]
}

/** bash `case` branches that step over each flag's value (a listed value only when the flag has a list). */
function skipValueBranches(flags: readonly ValueFlag[]): string {
  const free = flags.filter((f) => !f.options).flatMap((f) => f.names)
  const branches = free.length > 0 ? [`        ${free.join('|')}) ((i++)) ;;`] : []
  for (const flag of flags.filter((f) => f.options)) {
    branches.push(
      `        ${flag.names.join('|')}) [[ " ${flag.options!.join(' ')} " == *" \${COMP_WORDS[i+1]} "* ]] && ((i++)) ;;`,
    )
  }

  return branches.join('\n')
}

/**
 * Adds service-name completion to the bash script of @oclif/plugin-autocomplete, appended and independent of the
 * script's content: a wrapper answers the first argument of resolve/watch/deregister/chaos kill-instance from
 * `svc autocomplete services` (passing on --backend/-b/--profile/--token), and hands every other position to the
 * function the plugin registered for the binary, whatever its name (read back with `complete -p`).
 */
export function patchBashScript(script: string, bin: string, valueFlags: readonly ValueFlag[]): string {
  if (script.includes(MARKER)) return script
  return `${script}
${MARKER}
_${bin}_plugin_complete="$(complete -p ${bin} 2>/dev/null | sed -n 's/.*-F \\([^ ]*\\).*/\\1/p')"

_${bin}_service_names()
{
  local i word args=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    case "$word" in
      -b|--backend|--profile|--token) args+=("$word" "\${COMP_WORDS[i+1]}"); ((i++)) ;;
      --backend=*|--profile=*|--token=*) args+=("$word") ;;
    esac
  done
  "\${COMP_WORDS[0]}" autocomplete services "\${args[@]}" 2>/dev/null
}

_${bin}_complete()
{
  local cur="\${COMP_WORDS[COMP_CWORD]}" i word position=0 command=""
  if [[ "$cur" != -* ]]; then
    for ((i = 1; i < COMP_CWORD; i++)); do
      word="\${COMP_WORDS[i]}"
      case "$word" in
${skipValueBranches(valueFlags)}
        -*) ;;
        *) if [[ -z "$command" ]]; then command="$word"; elif [[ "$command" == chaos && "$position" -eq 0 ]]; then command="chaos $word"; else ((position++)); fi ;;
      esac
    done
    # i passed COMP_CWORD: the word being completed is the value of the flag before it
    (( i > COMP_CWORD )) && command=""
    case "$command" in
      ${SERVICE_ARG_COMMANDS.join('|').replaceAll(' ', String.raw`\ `)})
        if [[ "$position" -eq 0 ]]; then
          local names
          names="$(_${bin}_service_names)"
          [[ "$command" == watch ]] && names="tree $names"
          COMPREPLY=($(compgen -W "$names" -- "$cur"))
          return 0
        fi
        ;;
    esac
  fi
  [[ -n "$_${bin}_plugin_complete" ]] && "$_${bin}_plugin_complete" "$@"
}

# only when the plugin registered one: never hide its completion behind an unknown setup
[[ -n "$_${bin}_plugin_complete" && "$_${bin}_plugin_complete" != _${bin}_complete ]] && complete -o default -F _${bin}_complete ${bin}
`
}

/**
 * Adds service-name completion to the zsh script of @oclif/plugin-autocomplete without editing what the plugin
 * wrote: a #compdef file ends by calling its function (`_svc`, zsh's autoload convention); that last call becomes a
 * wrapper that answers the first argument of resolve/watch/deregister/chaos kill-instance with service names and
 * hands everything else to the plugin's function. A script without that call is left as it is.
 */
export function patchZshScript(script: string, bin: string): string {
  if (script.includes(MARKER)) return script
  const lines = script.replace(/\n+$/, '').split('\n')
  if (lines.at(-1)?.trim() !== `_${bin}`) return script
  lines.pop()
  return `${lines.join('\n')}
${MARKER}
_${bin}_service_names() {
  local -a names args extra
  local i
  extra=("$@")
  for ((i = 1; i < CURRENT; i++)); do
    case "\${words[i]}" in
      -b|--backend|--profile|--token) args+=("\${words[i]}" "\${words[i+1]}") ;;
      --backend=*|--profile=*|--token=*) args+=("\${words[i]}") ;;
    esac
  done
  names=(\${(f)"$(${bin} autocomplete services "\${args[@]}" 2>/dev/null)"})
  compadd -a extra names
}

_${bin}_with_services() {
  local -a plain
  local i
  for ((i = 2; i < CURRENT; i++)); do
    case "\${words[i]}" in
      -b|--backend|--profile|--token|-t|--tag|-n|--count|-s|--service) ((i++)) ;;
      -*) ;;
      *) plain+=("\${words[i]}") ;;
    esac
  done
  if [[ "\${words[CURRENT]}" != -* ]]; then
    case "\${(j: :)plain}" in
      resolve|deregister|chaos\\ kill-instance) _${bin}_service_names; return ;;
      watch) _${bin}_service_names tree; return ;;
    esac
  fi
  _${bin} "$@"
}

_${bin}_with_services "$@"
compdef _${bin}_with_services ${bin}
`
}
