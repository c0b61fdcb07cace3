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
 * Adds service-name completion to the bash script of @oclif/plugin-autocomplete: a wrapper that answers the
 * first argument of resolve/watch/deregister/chaos kill-instance from `svc autocomplete services` (passing on
 * --backend/-b/--profile/--token), and hands every other position to the plugin's function.
 */
export function patchBashScript(script: string, bin: string, valueFlags: readonly ValueFlag[]): string {
  if (script.includes(MARKER)) return script
  return `${script}
${MARKER}
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
  _${bin}_autocomplete
}

complete -F _${bin}_complete ${bin}
`
}

/**
 * Adds service-name completion to the zsh script of @oclif/plugin-autocomplete: the first argument of
 * resolve/watch/deregister/kill-instance completes from `svc autocomplete services` instead of file names.
 */
export function patchZshScript(script: string, bin: string): string {
  if (script.includes(MARKER)) return script
  const lines = script.split('\n')
  let pending = false
  let label = ''
  const out = lines.map((line) => {
    const found = /^\s*"?([\w-]+)"?\)\s*$/.exec(line)?.[1]
    if (found !== undefined) {
      label = found
      pending = ['deregister', 'kill-instance', 'resolve', 'watch'].includes(found)
    }

    if (pending && line.includes('"*: :_files"')) {
      pending = false
      const extra = label === 'watch' ? ' tree' : ''
      return line.replace('"*: :_files"', `"1: :_${bin}_service_names${extra}" "*: :_files"`)
    }

    return line
  })
  const helper = `${MARKER}
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
`
  const first = out.findIndex((line) => line.startsWith('#compdef'))
  out.splice(first + 1, 0, helper)
  return out.join('\n')
}
