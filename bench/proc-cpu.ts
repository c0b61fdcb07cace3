import {readFileSync} from 'node:fs'

/** Microseconds per clock tick of /proc/<pid>/stat (USER_HZ is 100 on Linux). */
export const TICK_US = 1e6 / 100

/** User + system CPU ticks (1/100 s) of one process. */
function ticksOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8')
    .replace(/^.*\) /, '')
    .split(' ')
  return Number(fields[11]) + Number(fields[12])
}

/** User + system CPU ticks of `pid` and its child processes (nginx's worker, svc proxy's workers). */
export function cpuTicks(pid: number): number {
  let kids: number[] = []
  try {
    kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)
  } catch {
    // no children file: count the process alone
  }

  return [pid, ...kids].reduce((sum, p) => sum + ticksOf(p), 0)
}
