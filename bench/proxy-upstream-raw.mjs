/**
 * A cheap upstream for bench/proxy.sh (SVC_BENCH_UPSTREAM=raw): a net server that answers every request head it
 * reads with one small fixed HTTP/1.1 response, keep-alive, without an HTTP library. It costs a fraction of a
 * node:http server's CPU per request, so the proxies' own costs dominate the ratios. GET/HEAD without a body
 * only, which is all wrk sends. Usage: node bench/proxy-upstream-raw.mjs PORT
 */
import {createServer} from 'node:net'

const body = '{"service":"bench","ok":true}\n'
const response = Buffer.from(
  `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
)
const server = createServer((socket) => {
  socket.setNoDelay(true)
  let tail = ''
  socket.on('data', (chunk) => {
    const text = tail + chunk.toString('latin1')
    let count = 0
    let at = text.indexOf('\r\n\r\n')
    let end = 0
    while (at !== -1) {
      count++
      end = at + 4
      at = text.indexOf('\r\n\r\n', end)
    }

    tail = text.slice(end)
    if (count === 1) socket.write(response)
    else if (count > 1) socket.write(Buffer.concat(Array.from({length: count}, () => response)))
  })
  socket.on('error', () => {})
})
server.listen(Number(process.argv[2]), '127.0.0.1', () => process.stdout.write(`upstream on ${process.argv[2]}\n`))
process.on('SIGTERM', () => process.exit(0))
