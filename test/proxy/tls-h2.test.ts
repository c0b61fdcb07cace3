import {createSecureContext} from 'node:tls'

import {describe, expect, it} from 'vitest'

import {GRPC, grpcStatusFor, parseGrpcTimeout} from '../../src/lib/proxy/h2/grpc.js'
import {PREFACE} from '../../src/lib/proxy/h2/preface.js'
import {CertStore, type LoadedCert, pairCertFlags} from '../../src/lib/proxy/tls/certs.js'
import {hostName} from '../../src/lib/proxy/tls/redirect.js'

function cert(file: string, names: string[]): LoadedCert {
  return {files: {cert: file, key: file}, names, pem: {cert: '', key: ''}, context: createSecureContext()}
}

describe('SNI certificate choice', () => {
  const store = new CertStore([
    cert('default', ['shop.test']),
    cert('wild', ['*.api.test']),
    cert('exact', ['v1.api.test', 'other.test']),
  ])

  it('prefers an exact name, then a one-label wildcard, else the first pair', () => {
    expect(store.select('v1.api.test').files.cert).toBe('exact')
    expect(store.select('V2.API.test.').files.cert).toBe('wild')
    // a wildcard covers one label only
    expect(store.select('a.b.api.test').files.cert).toBe('default')
    expect(store.select('api.test').files.cert).toBe('default')
    expect(store.select(undefined).files.cert).toBe('default')
    expect(store.select('shop.test').files.cert).toBe('default')
  })

  it('pairs --tls-cert and --tls-key in order, refusing a count mismatch', () => {
    expect(pairCertFlags(['a.crt', 'b.crt'], ['a.key', 'b.key'])).toEqual([
      {cert: 'a.crt', key: 'a.key'},
      {cert: 'b.crt', key: 'b.key'},
    ])
    expect(() => pairCertFlags(['a.crt'], [])).toThrow('1 --tls-cert but 0 --tls-key')
  })
})

describe('gRPC and HTTP/2 details', () => {
  it('reads grpc-timeout in each unit, refusing malformed values', () => {
    expect(parseGrpcTimeout('300m')).toBe(300)
    expect(parseGrpcTimeout('2S')).toBe(2000)
    expect(parseGrpcTimeout('1M')).toBe(60_000)
    expect(parseGrpcTimeout('1H')).toBe(3_600_000)
    expect(parseGrpcTimeout('5000u')).toBe(5)
    expect(parseGrpcTimeout('123456789S')).toBeUndefined()
    expect(parseGrpcTimeout('1s')).toBeUndefined()
    expect(parseGrpcTimeout(undefined)).toBeUndefined()
  })

  it('maps the gateway’s HTTP answers to gRPC status codes', () => {
    expect(grpcStatusFor(503)).toBe(GRPC.UNAVAILABLE)
    expect(grpcStatusFor(502)).toBe(GRPC.UNAVAILABLE)
    expect(grpcStatusFor(504)).toBe(GRPC.DEADLINE_EXCEEDED)
    expect(grpcStatusFor(404)).toBe(GRPC.UNIMPLEMENTED)
    expect(grpcStatusFor(400)).toBe(GRPC.INTERNAL)
    expect(grpcStatusFor(405)).toBe(GRPC.UNKNOWN)
  })

  it('knows the h2c preface and the redirect’s host', () => {
    expect(PREFACE.toString('latin1')).toBe('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')
    expect(hostName('shop.test:8080')).toBe('shop.test')
    expect(hostName('[::1]:80')).toBe('[::1]')
    expect(hostName('bad host')).toBeUndefined()
    expect(hostName(undefined)).toBeUndefined()
  })
})
