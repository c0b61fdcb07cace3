/** `-internal` as `--internal` when that is a flag's name (registrator writes long flags with one dash). */
export function singleDashFlag(given: string, known: readonly string[]): string | undefined {
  const match = /^-([a-z][\w-]+)(=.*)?$/i.exec(given)
  if (!match || !known.includes(match[1]!)) return undefined
  return `--${match[1]}${match[2] ?? ''}`
}

/** Registrator's positional registry URI (`registrator consul://host:8500`) in its svc form, or undefined. */
export function registratorBackend(id: string): string | undefined {
  const match = /^agent:([a-z][a-z0-9+.-]*:\/\/.*)$/i.exec(id)
  return match ? `svc agent --backend ${match[1]}` : undefined
}
