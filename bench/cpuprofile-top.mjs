/**
 * The top entries of a V8 .cpuprofile (node --cpu-prof), by self time: what bench/proxy.sh's CPU per request is
 * spent on. Usage: node bench/cpuprofile-top.mjs FILE.cpuprofile [N=25]
 */
import {readFileSync} from 'node:fs'
import path from 'node:path'

const [file, count = '25'] = process.argv.slice(2)
if (!file) {
  console.error('usage: node bench/cpuprofile-top.mjs FILE.cpuprofile [N]')
  process.exit(2)
}

const profile = JSON.parse(readFileSync(file, 'utf8'))
const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const self = new Map()
const dt = new Map()
// time deltas belong to the sample they follow
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i]
  dt.set(id, (dt.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0))
}

let total = 0
for (const [id, us] of dt) {
  const {callFrame} = byId.get(id)
  const where = callFrame.url ? `${path.basename(callFrame.url)}:${callFrame.lineNumber + 1}` : ''
  const key = `${callFrame.functionName || '(anonymous)'} ${where}`.trim()
  self.set(key, (self.get(key) ?? 0) + us)
  total += us
}

const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(count))
console.log(`total ${(total / 1000).toFixed(0)} ms sampled`)
for (const [key, us] of rows) console.log(`${((100 * us) / total).toFixed(1).padStart(5)} %  ${key}`)
