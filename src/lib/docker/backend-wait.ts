import {errorMessage} from '../errors.js'
import {sleep} from '../registry/options.js'
import type {Registry} from '../registry/types.js'
import type {AgentEventBody, AgentOptions} from './types.js'

/**
 * Pings the registry until it answers: `retryAttempts` more tries (-1: forever) every `retryIntervalMs`, each
 * failure reported as a `retrying` backend event; throws the last error when the tries run out.
 */
export async function waitForBackend(
  registry: Registry,
  options: Pick<AgentOptions, 'retryAttempts' | 'retryIntervalMs'>,
  emit: (body: AgentEventBody) => void,
  signal: AbortSignal,
): Promise<void> {
  const {retryAttempts, retryIntervalMs} = options
  for (let attempt = 1; ; attempt++) {
    try {
      await registry.ping()
      emit({type: 'backend', state: 'connected', detail: registry.description})
      return
    } catch (error) {
      if (retryAttempts !== -1 && attempt > retryAttempts) throw error
      const left =
        retryAttempts === -1
          ? 'retrying forever'
          : `${retryAttempts - attempt + 1} more attempt${retryAttempts - attempt === 0 ? '' : 's'}`
      emit({type: 'backend', state: 'retrying', detail: `${errorMessage(error)} (${left})`})
      await sleep(retryIntervalMs, signal)
      if (signal.aborted) return
    }
  }
}
