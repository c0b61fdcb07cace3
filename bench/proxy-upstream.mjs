/**
 * The upstream of bench/proxy.sh: a node:http server with one small fixed response for every request, the same
 * for the direct run and every proxy. Usage: node bench/proxy-upstream.mjs PORT
 */
import {createServer} from 'node:http'

const body = Buffer.from('{"service":"bench","ok":true}\n')
const headers = {'content-type': 'application/json', 'content-length': body.length}
const server = createServer((req, res) => {
  // drain a request body, if any, before answering
  req.resume()
  res.writeHead(200, headers)
  res.end(body)
})
server.keepAliveTimeout = 65_000
server.listen(Number(process.argv[2]), '127.0.0.1', () => process.stdout.write(`upstream on ${process.argv[2]}\n`))
process.on('SIGTERM', () => process.exit(0))
