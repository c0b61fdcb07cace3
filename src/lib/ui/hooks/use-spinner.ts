import {useEffect, useState} from 'react'

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏']

/** A spinner frame that advances every `intervalMs` while `active`. */
export function useSpinner(active: boolean, intervalMs = 80): string {
  const [frame, setFrame] = useState(0)
  useEffect(() => {
    if (!active) return
    const timer = setInterval(() => setFrame((n) => (n + 1) % FRAMES.length), intervalMs)
    return () => clearInterval(timer)
  }, [active, intervalMs])
  return FRAMES[frame]!
}
