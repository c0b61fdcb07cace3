import {spawn} from 'node:child_process'

/**
 * The watchdog's program (plain JavaScript for `node -e`). Every 500 ms: once `dir` is gone, it exits (the owner
 * cleaned up); once the owner process is gone, it SIGKILLs every member named by a manifest.json in `dir` or one
 * level below (only processes whose command line names the member's folder), removes `dir` and exits.
 */
const REAPER_SOURCE = String.raw`
const fs = require('node:fs')
const path = require('node:path')
const owner = Number(process.argv[1])
const dir = process.argv[2]
const alive = (pid) => { try { process.kill(pid, 0); return true } catch (e) { return e.code === 'EPERM' } }
function manifests() {
  const found = []
  const visit = (d, depth) => {
    let entries = []
    try { entries = fs.readdirSync(d, {withFileTypes: true}) } catch { return }
    for (const e of entries) {
      const p = path.join(d, e.name)
      if (e.isFile() && e.name === 'manifest.json') found.push(p)
      else if (e.isDirectory() && depth > 0) visit(p, depth - 1)
    }
  }
  visit(dir, 1)
  return found
}
function reap() {
  for (const file of manifests()) {
    let manifest
    try { manifest = JSON.parse(fs.readFileSync(file, 'utf8')) } catch { continue }
    for (const m of manifest.members || []) {
      if (typeof m.pid !== 'number' || typeof m.dataDir !== 'string' || !alive(m.pid)) continue
      let cmdline = ''
      try { cmdline = fs.readFileSync('/proc/' + m.pid + '/cmdline', 'utf8') } catch { continue }
      if (!cmdline.includes(path.dirname(m.dataDir) + path.sep)) continue
      try { process.kill(-m.pid, 'SIGKILL') } catch { try { process.kill(m.pid, 'SIGKILL') } catch {} }
    }
  }
  setTimeout(() => { fs.rmSync(dir, {recursive: true, force: true}); process.exit(0) }, 500)
}
const timer = setInterval(() => {
  if (!fs.existsSync(dir)) process.exit(0)
  if (!alive(owner)) { clearInterval(timer); reap() }
}, 500)
`

/**
 * Starts a detached watchdog that kills the clusters under `dir` and removes `dir` if process `ownerPid` dies
 * without cleaning up (a crash, SIGKILL, a CI timeout). It exits by itself once `dir` is removed.
 */
export function spawnReaper(dir: string, ownerPid: number = process.pid): number | undefined {
  const child = spawn(process.execPath, ['-e', REAPER_SOURCE, String(ownerPid), dir], {
    cwd: '/',
    detached: true,
    stdio: 'ignore',
  })
  child.on('error', () => {
    // best effort: without a reaper, a crash leaves the servers running
  })
  child.unref()
  return child.pid
}
