import {useStdout} from 'ink'
import {useEffect, useState} from 'react'

export interface TerminalSize {
  columns: number
  /** Undefined when the output is not a terminal (tests). */
  rows?: number
}

/** The terminal's size, updated on resize; `width` overrides the columns (tests). */
export function useTerminalSize(width?: number): TerminalSize {
  const {stdout} = useStdout()
  const [size, setSize] = useState(() => measure(stdout, width))

  useEffect(() => {
    const onResize = (): void => {
      const next = measure(stdout, width)
      setSize((prev) => (prev.columns === next.columns && prev.rows === next.rows ? prev : next))
    }

    onResize()
    stdout.on('resize', onResize)
    return () => {
      stdout.off('resize', onResize)
    }
  }, [stdout, width])

  return size
}

function measure(stdout: NodeJS.WriteStream, width: number | undefined): TerminalSize {
  return {columns: width ?? (stdout.columns || 80), rows: stdout.rows || undefined}
}
