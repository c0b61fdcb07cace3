import {jsonRenderer, plainRenderer} from './format.js'
import {DemoFeed, runDemo} from './runner.js'
import type {DemoOptions} from './types.js'

export interface DemoSession {
  options: Omit<DemoOptions, 'signal'>
  /** The paced walkthrough on a terminal; else plain text or NDJSON. */
  interactive: boolean
  json: boolean
  /** Ctrl-C or SIGTERM: stop and clean up. */
  signal: AbortSignal
}

/**
 * Runs the demo to its end. A hang-up closes the view but lets the clean-up finish; a closed terminal (EIO) or
 * pipe (EPIPE) must not end the process either (oclif's own handler rethrows EIO): the clean-up runs unwatched.
 */
export async function runDemoSession(session: DemoSession): Promise<void> {
  const view = new AbortController()
  const stop = new AbortController()
  session.signal.addEventListener('abort', () => stop.abort(), {once: true})
  const hangUp = (): void => {
    view.abort()
    stop.abort()
  }

  process.on('SIGHUP', hangUp)
  const handlers = process.stdout.listeners('error') as Array<(error: Error) => void>
  process.stdout.removeAllListeners('error')
  process.stdout.on('error', ignore)
  process.stderr.on('error', ignore)
  const opts: DemoOptions = {...session.options, signal: stop.signal}
  try {
    if (session.interactive) {
      const feed = new DemoFeed()
      const {renderDemo} = await import('../ui/demo.js')
      const drawn = renderDemo(feed, {signal: view.signal})
      try {
        await runDemo(opts, (event) => feed.push(event))
      } finally {
        await drawn
      }

      return
    }

    const render = session.json ? jsonRenderer() : plainRenderer()
    await runDemo(opts, (event) => {
      const text = render(event)
      if (text !== undefined) process.stdout.write(text + '\n')
    })
  } finally {
    process.off('SIGHUP', hangUp)
    // after a hang-up every later write fails too: keep ignoring them to the end
    if (!view.signal.aborted) {
      process.stdout.off('error', ignore)
      process.stderr.off('error', ignore)
      for (const handler of handlers) process.stdout.on('error', handler)
    }
  }
}

function ignore(): void {}
