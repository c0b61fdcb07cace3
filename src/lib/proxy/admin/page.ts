/**
 * The route page the admin listener serves on `/`: one self-contained HTML document (inline CSS and script, no
 * framework, nothing fetched but /routes), redrawn from /routes every second. Rates are the counters' deltas
 * between two reads. Under --workers N, /routes is the whole proxy's (merge-routes.ts): the same fields, plus
 * `ejectedIn` and `workers` per instance.
 */

const STYLE = `
:root { color-scheme: light dark; --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --dim: #6e7781; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; }
h1 { font-size: 1.3rem; margin: 0 0 .2rem; }
#status { color: var(--dim); margin-bottom: 1rem; }
#status.down { color: var(--bad); }
section { margin-bottom: 1.2rem; }
h2 { font-size: 1.05rem; margin: 0 0 .3rem; }
h2 small { font-weight: normal; color: var(--dim); }
table { border-collapse: collapse; min-width: 42rem; }
th, td { text-align: left; padding: .2rem .8rem .2rem 0; border-bottom: 1px solid #8884; }
th { font-weight: 600; color: var(--dim); }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.state { padding: 0 .4rem; border-radius: .6rem; font-size: .85em; color: #fff; }
.state.in-rotation { background: var(--ok); } .state.ejected { background: var(--warn); }
.state.unhealthy { background: var(--bad); }
#empty { color: var(--dim); }
`

const SCRIPT = `
'use strict'
const last = {time: 0, counts: new Map()}
function el(tag, attrs, ...children) {
  const node = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v)
  for (const child of children) node.append(child)
  return node
}
function rate(key, count, seconds) {
  const before = last.counts.get(key)
  return before === undefined || seconds <= 0 ? '–' : ((count - before) / seconds).toFixed(1)
}
function draw(services, now) {
  const seconds = last.time === 0 ? 0 : (now - last.time) / 1000
  const root = document.getElementById('services')
  const counts = new Map()
  root.replaceChildren()
  for (const s of services) {
    counts.set(s.service, s.requests)
    const rows = s.instances.map((i) => {
      const key = s.service + '\\u0000' + i.id
      counts.set(key, i.requests)
      const state = el('span', {class: 'state ' + i.state}, i.state)
      const until = i.ejectedUntil ? ' until ' + new Date(i.ejectedUntil).toLocaleTimeString() : ''
      // under --workers N each worker ejects on its own
      const where = i.ejectedIn > 0 && i.workers > 1 ? ' in ' + i.ejectedIn + ' of ' + i.workers + ' workers' : ''
      return el('tr', {'data-instance': i.id},
        el('td', {}, i.id), el('td', {}, i.address), el('td', {}, i.health),
        el('td', {}, state, where, until), el('td', {class: 'num'}, String(i.weight)),
        el('td', {class: 'num'}, String(i.inflight)), el('td', {class: 'num'}, String(i.requests)),
        el('td', {class: 'num'}, rate(key, i.requests, seconds)))
    })
    const head = el('tr', {}, ...['instance', 'address', 'health', 'state', 'weight', 'in flight', 'requests', 'req/s']
      .map((h) => el('th', {}, h)))
    const prefixes = s.prefixes.length > 0 ? ' · prefixes ' + s.prefixes.join(' ') : ''
    root.append(el('section', {'data-service': s.service},
      el('h2', {}, s.service + ' ', el('small', {}, s.available + '/' + s.instances.length + ' in rotation · ' +
        rate(s.service, s.requests, seconds) + ' req/s' + prefixes)),
      el('table', {}, el('thead', {}, head), el('tbody', {}, ...rows))))
  }
  document.getElementById('empty').hidden = services.length > 0
  last.time = now
  last.counts = counts
}
async function refresh() {
  const status = document.getElementById('status')
  try {
    const res = await fetch('/routes', {cache: 'no-store'})
    if (!res.ok) throw new Error('HTTP ' + res.status)
    const services = await res.json()
    draw(services, Date.now())
    status.className = ''
    status.textContent = services.length + ' services · updated ' + new Date().toLocaleTimeString()
  } catch (error) {
    status.className = 'down'
    status.textContent = 'cannot read /routes (' + error.message + '); retrying every second'
  } finally {
    setTimeout(refresh, 1000)
  }
}
refresh()
`

/** The route page's HTML, built once. */
export const ROUTE_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>svc proxy routes</title>
<style>${STYLE}</style>
</head>
<body>
<h1>svc proxy routes</h1>
<div id="status">loading /routes…</div>
<div id="services"></div>
<p id="empty" hidden>No service in the route table yet: register one (svc register NAME --port N).</p>
<script>${SCRIPT}</script>
</body>
</html>
`
