import path from 'node:path'

import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'

import {ROOT} from './cli.js'

/** The Echo message of test/fixtures/grpc/echo.proto. */
export interface Msg {
  text?: string
  count?: number
  delayMs?: number
  server?: string
}

export type EchoClient = grpc.Client & {
  // grpc-js names each method also by its camel-cased original name
  unary(
    msg: Msg,
    meta: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, reply?: Msg) => void,
  ): void
  serverStream(msg: Msg, meta?: grpc.Metadata, opts?: grpc.CallOptions): grpc.ClientReadableStream<Msg>
  bidi(meta?: grpc.Metadata, opts?: grpc.CallOptions): grpc.ClientDuplexStream<Msg, Msg>
}

const definition = protoLoader.loadSync(path.join(ROOT, 'test/fixtures/grpc/echo.proto'), {keepCase: false})
const loaded = grpc.loadPackageDefinition(definition) as unknown as {
  svctest: {Echo: grpc.ServiceClientConstructor}
}
const Echo = loaded.svctest.Echo

/** The gRPC service name svc proxy routes on: /svctest.Echo/<Method>. */
export const ECHO_SERVICE = 'svctest.Echo'

export interface EchoServer {
  port: number
  name: string
  /** Calls whose client (here: svc proxy) cancelled them. */
  cancelled: number
  stop(force?: boolean): Promise<void>
}

/** A real grpc-js Echo server on 127.0.0.1 (insecure: svc proxy speaks h2c to it); replies carry `name`. */
export async function startEchoServer(name: string): Promise<EchoServer> {
  const server = new grpc.Server()
  const state: EchoServer = {port: 0, name, cancelled: 0, async stop() {}}
  server.addService(Echo.service, {
    Unary(call: grpc.ServerUnaryCall<Msg, Msg>, callback: grpc.sendUnaryData<Msg>) {
      const delay = call.request.delayMs ?? 0
      call.on('cancelled', () => state.cancelled++)
      const reply = (): void => callback(null, {text: call.request.text, server: name})
      if (delay > 0) setTimeout(reply, delay)
      else reply()
    },
    ServerStream(call: grpc.ServerWritableStream<Msg, Msg>) {
      const count = call.request.count ?? 1
      const delay = call.request.delayMs ?? 0
      let sent = 0
      call.on('cancelled', () => state.cancelled++)
      const next = (): void => {
        if (call.cancelled) return
        if (sent === count) {
          call.end()
          return
        }

        call.write({text: `${call.request.text ?? ''}#${sent++}`, server: name})
        setTimeout(next, delay)
      }

      next()
    },
    Bidi(call: grpc.ServerDuplexStream<Msg, Msg>) {
      call.on('data', (msg: Msg) => call.write({text: msg.text, server: name}))
      call.on('end', () => call.end())
      call.on('cancelled', () => state.cancelled++)
    },
  })
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    )
  })
  state.port = port
  state.stop = async (force = false) => {
    if (force) {
      server.forceShutdown()
      return
    }

    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        server.forceShutdown()
        resolve()
      }, 3000)
      server.tryShutdown(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  }

  return state
}

/** An Echo client to `address` (host:port of svc proxy): insecure h2c, or TLS with `ca` and the `servername`. */
export function echoClient(address: string, tls?: {ca: Buffer; servername: string}): EchoClient {
  const credentials = tls === undefined ? grpc.credentials.createInsecure() : grpc.credentials.createSsl(tls.ca)
  const options =
    tls === undefined ? {} : {'grpc.ssl_target_name_override': tls.servername, 'grpc.default_authority': tls.servername}
  return new Echo(address, credentials, options) as unknown as EchoClient
}

/** One unary call: the reply, or the error's gRPC status code. */
export async function unary(
  client: EchoClient,
  msg: Msg,
  deadlineMs = 5000,
): Promise<Msg | {code: number; details: string}> {
  return new Promise((resolve) => {
    client.unary(msg, new grpc.Metadata(), {deadline: Date.now() + deadlineMs}, (error, reply) =>
      resolve(error ? {code: error.code, details: error.details} : reply!),
    )
  })
}
