/**
 * The gRPC half of bench/proxy-h2.sh. `server PORT`: a grpc-js Echo server (test/fixtures/grpc/echo.proto) on
 * 127.0.0.1. `load ADDRESS SECONDS CONCURRENCY`: after 200 warm-up calls, unary calls CONCURRENCY at a time on one
 * channel for SECONDS, then one JSON line: calls/s, p99 in ms, errors. Bounded: each call has a 5 s deadline.
 */
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const definition = protoLoader.loadSync(path.join(ROOT, 'test/fixtures/grpc/echo.proto'))
const {Echo} = grpc.loadPackageDefinition(definition).svctest
const [mode, a1, a2, a3] = process.argv.slice(2)

if (mode === 'server') {
  const server = new grpc.Server()
  server.addService(Echo.service, {
    Unary: (call, callback) => callback(null, {text: call.request.text, server: 'bench'}),
    ServerStream: (call) => call.end(),
    Bidi: (call) => call.on('end', () => call.end()),
  })
  server.bindAsync(`127.0.0.1:${a1}`, grpc.ServerCredentials.createInsecure(), (error) => {
    if (error) throw error
    process.stdout.write(`grpc upstream on ${a1}\n`)
  })
  process.on('SIGTERM', () => process.exit(0))
} else if (mode === 'load') {
  const client = new Echo(a1, grpc.credentials.createInsecure())
  const seconds = Number(a2)
  const concurrency = Number(a3)
  let latencies = []
  let errors = 0
  let deadline = 0
  const one = () =>
    new Promise((resolve) => {
      const started = process.hrtime.bigint()
      client.unary({text: 'bench'}, {deadline: Date.now() + 5000}, (error) => {
        if (error) errors++
        latencies.push(Number(process.hrtime.bigint() - started) / 1e6)
        resolve()
      })
    })
  const worker = async (until) => {
    while (until()) await one()
  }

  let warm = 0
  await Promise.all(Array.from({length: concurrency}, () => worker(() => warm++ < 200)))
  latencies = []
  errors = 0
  const begin = process.hrtime.bigint()
  deadline = Date.now() + seconds * 1000
  await Promise.all(Array.from({length: concurrency}, () => worker(() => Date.now() < deadline)))
  const elapsed = Number(process.hrtime.bigint() - begin) / 1e9
  const calls = latencies.length
  latencies.sort((x, y) => x - y)
  const p99 = latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))] ?? Number.NaN
  process.stdout.write(JSON.stringify({rps: calls / elapsed, p99Ms: p99, errors}) + '\n')
  client.close()
} else {
  process.stderr.write('usage: proxy-h2-grpc.mjs server PORT | load ADDRESS SECONDS CONCURRENCY\n')
  process.exit(2)
}
