/** Whether this runs under CI, by the rule ink itself follows (is-in-ci): CI=0 or CI=false mean no. */
export function isCi(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.CI === '0' || env.CI === 'false') return false
  return 'CI' in env || 'CONTINUOUS_INTEGRATION' in env || Object.keys(env).some((key) => key.startsWith('CI_'))
}

/** Live ink views mount only on an interactive terminal: stdin and stdout are TTYs and this is not CI. */
export function isInteractive(): boolean {
  return Boolean(process.stdin.isTTY && process.stdout.isTTY) && !isCi()
}
