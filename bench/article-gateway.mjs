/**
 * The gateway of shared/background/node-gateway-discovery.md, rebuilt the way the article built it, as a peer for
 * bench/proxy.sh: express 4 routes every request under /<service>/ to http-proxy 1, a fresh proxy.web() call with a
 * per-request target picked round-robin from an in-memory route table, and no keep-alive agent (http-proxy's
 * default, which the article kept). The article filled the table from ZooKeeper watches; here it comes from argv so
 * the bench measures only the request path.
 *
 * Usage: node bench/article-gateway.mjs PORT SERVICE=HOST:PORT,HOST:PORT [SERVICE=...]
 */
import express from 'express'
import httpProxy from 'http-proxy'

const [portArg, ...routeArgs] = process.argv.slice(2)
const routes = {}
for (const arg of routeArgs) {
  const [service, list] = arg.split('=')
  const hosts = list.split(',')
  let next = 0
  // the article's loadbalance.roundRobin(children): pick() returns the next host in turn
  routes[service] = {pick: () => hosts[next++ % hosts.length]}
}

const proxy = httpProxy.createProxyServer({})
proxy.on('error', (error, req, res) => {
  if (!res.headersSent) res.writeHead(502, {'content-type': 'text/plain'})
  res.end(`bad gateway: ${error.message}\n`)
})

const app = express()
app.use('/:service', (req, res, next) => {
  const route = routes[req.params.service]
  if (!route) return next()
  // under app.use, req.url is already the rest of the path (with the query)
  proxy.web(req, res, {target: 'http://' + route.pick()})
})
app.use((req, res) => res.status(404).send('Not Found'))

app.listen(Number(portArg), '127.0.0.1', () => process.stdout.write(`article gateway on 127.0.0.1:${portArg}\n`))
