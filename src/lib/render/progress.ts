/** Progress on stderr: a one-line spinner on a terminal, plain `svc: ...` lines otherwise (pipes, CI, logs). */
export interface Progress {
  update(message: string): void
  /** Ends the spinner line; `message` stays as a plain line. */
  done(message?: string): void
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏']

export function progress(stream: NodeJS.WriteStream = process.stderr, spinner = Boolean(stream.isTTY)): Progress {
  if (!spinner) {
    return {
      update: (message) => stream.write(`svc: ${message}\n`),
      done(message) {
        if (message) stream.write(`svc: ${message}\n`)
      },
    }
  }

  let text = ''
  let frame = 0
  const draw = (): void => {
    const width = (stream.columns || 80) - 3
    stream.write(`\r\u001B[2K${FRAMES[frame % FRAMES.length]} ${text.slice(0, width)}`)
    frame++
  }

  const timer = setInterval(draw, 80)
  timer.unref()
  return {
    update(message) {
      text = message
      draw()
    },
    done(message) {
      clearInterval(timer)
      stream.write('\r\u001B[2K')
      if (message) stream.write(`svc: ${message}\n`)
    },
  }
}
