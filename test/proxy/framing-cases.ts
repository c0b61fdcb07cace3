import type {RawConversation, RawOptions} from '../helpers/raw-http.js'
import type {RecordingUpstream} from '../helpers/recording-upstream.js'

/**
 * One raw-socket case against the edge: what is sent, what svc proxy must answer, and what must never reach the
 * upstream. The same table is docs/security.md.
 */
export interface FramingCase {
  id: string
  /** The case's number in issue 14, or 'held' for what held before it. */
  issue: number | 'held'
  what: string
  send: string[]
  /** The statuses svc answers, in order. */
  svc: number[]
  /** svc closes the connection after them. */
  closes?: boolean
  /** Requests the upstream parses (complete ones), exactly. */
  forwards?: number
  /** Bytes that never reach the upstream. */
  never?: string[]
  /** Request targets the upstream never parses as a request. */
  neverRequest?: string[]
  check?: (svc: RawConversation, upstream: RecordingUpstream) => void
  opts?: RawOptions
  /**
   * Where the node:http engine (public APIs only) cannot give the llhttp engine's answer: what it answers, and why.
   * On that engine `svc`, `check` and `opts` are these (no `check` here: none).
   */
  nodeHttp?: Pick<FramingCase, 'svc' | 'check' | 'opts'> & {why: string}
}

const H = 'Host: x\r\n'
const SMUGGLED = 'GET /secret HTTP/1.1\r\nHost: internal\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n'
const INTERNAL = 'GET /internal/admin HTTP/1.1\r\nHost: internal\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n'
const UPGRADE =
  'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
const CHUNKED = 'Transfer-Encoding: chunked\r\n'
const post = (path: string, fields: string, body: string): string =>
  `POST /good/${path} HTTP/1.1\r\n${H}${fields}\r\n${body}`
const fail = (message: string): never => {
  throw new Error(message)
}

const MANY_FIELDS = Array.from({length: 16_000}, (_, i) => `X-F-${i}: ${'v'.repeat(50)}\r\n`).join('')

export const CASES: FramingCase[] = [
  {
    id: 'connection-content-length',
    issue: 1,
    what: '`Connection: content-length` on a POST with a 3-byte body, then a second request',
    send: [
      post('c', 'Content-Length: 3\r\nConnection: content-length\r\n', 'abc') + `GET /good/next HTTP/1.1\r\n${H}\r\n`,
    ],
    svc: [200, 200],
    forwards: 2,
    check(_c, up) {
      const [first] = up.requests()
      if (first?.body !== 'abc' || !first.headers.includes('Content-Length')) fail('Content-Length was removed')
    },
  },
  {
    id: 'connection-content-length-smuggle',
    issue: 1,
    what: '`Connection: content-length` with a whole `GET /secret` (Host: internal, X-Forwarded-For) as the body',
    send: [post('c', `Content-Length: ${SMUGGLED.length}\r\nConnection: content-length\r\n`, SMUGGLED)],
    svc: [200],
    forwards: 1,
    neverRequest: ['/secret'],
  },
  {
    id: 'connection-host',
    issue: 1,
    what: '`Connection: host`',
    send: [`GET /good/h HTTP/1.1\r\n${H}Connection: host\r\n\r\n`],
    svc: [200],
    check(_c, up) {
      if (!up.requests()[0]?.headers.some((h) => h.toLowerCase() === 'host')) fail('Host was removed')
    },
  },
  {
    id: 'response-connection-content-length',
    issue: 1,
    what: 'upstream answers with `Connection: content-length` and Content-Length: 2',
    send: [`GET /good/connlen HTTP/1.1\r\n${H}\r\n`],
    svc: [200],
    check(c) {
      if (c.responses[0]?.headers['content-length'] !== '2') fail('the response lost its Content-Length')
    },
  },
  {
    id: 'upgrade-without-101',
    issue: 3,
    what: '`Upgrade: websocket` answered 200 by the upstream, then `GET /internal/admin` (Host: internal)',
    send: [`GET /good/noup HTTP/1.1\r\n${H}${UPGRADE}\r\n` + INTERNAL],
    svc: [200],
    closes: true,
    neverRequest: ['/internal/admin'],
  },
  {
    id: 'upgrade-h2c-without-101',
    issue: 3,
    what: '`Upgrade: h2c` answered 200, then `GET /internal/admin`',
    send: [
      `GET /good/noup HTTP/1.1\r\n${H}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n` +
        INTERNAL,
    ],
    svc: [200],
    closes: true,
    neverRequest: ['/internal/admin'],
  },
  {
    id: 'upgrade-101',
    issue: 3,
    what: 'WebSocket upgrade answered 101: a tunnel, bytes after it echoed',
    send: [`GET /good/ws HTTP/1.1\r\n${H}${UPGRADE}\r\n`, 'hello'],
    svc: [101],
    opts: {gapMs: 150},
    check(c) {
      if (!c.responses[0]?.body.includes('echo:hello')) fail(`the tunnel did not carry bytes: ${c.raw}`)
    },
  },
  {
    id: 'upgrade-with-body',
    issue: 3,
    what: 'Upgrade request with `Content-Length: 44`',
    send: [`GET /good/ws HTTP/1.1\r\n${H}${UPGRADE}Content-Length: 44\r\n\r\n${'x'.repeat(44)}`],
    svc: [400],
    closes: true,
    forwards: 0,
  },
  {
    id: 'upgrade-hanging-upstream',
    issue: 3,
    what: 'Upgrade to an upstream that never answers',
    send: [`GET /good/hang HTTP/1.1\r\n${H}${UPGRADE}\r\n`],
    svc: [504],
    closes: true,
    opts: {quietMs: 3500, limitMs: 5000},
  },
  {
    id: 'tunnel-idle',
    issue: 3,
    what: 'a 101 tunnel left idle is closed after the upstream timeout',
    send: [`GET /good/ws HTTP/1.1\r\n${H}${UPGRADE}\r\n`],
    svc: [101],
    closes: true,
    opts: {quietMs: 4000, limitMs: 5000},
    check(c) {
      if (c.ms > 3500) fail(`the idle tunnel stayed open ${c.ms} ms`)
    },
  },
  {
    id: 'response-desync',
    issue: 4,
    what: 'upstream sends a second, unasked-for response (`X-Smuggled`, `POISON!`); a pipelined request follows',
    send: [`GET /good/desync HTTP/1.1\r\n${H}\r\nGET /good/second HTTP/1.1\r\n${H}\r\n`],
    svc: [200, 200],
    check(c) {
      if (c.raw.includes('POISON') || c.raw.includes('X-Smuggled')) fail('the smuggled response was served')
      if (!c.responses[1]?.body.includes('/second')) fail('the second request got another answer')
    },
  },
  {
    id: 'te-gzip-chunked',
    issue: 5,
    what: '`Transfer-Encoding: gzip, chunked`',
    send: [post('t', 'Transfer-Encoding: gzip, chunked\r\n', '3\r\nabc\r\n0\r\n\r\n')],
    svc: [501],
    closes: true,
    forwards: 0,
  },
  {
    id: 'te-two-fields',
    issue: 5,
    what: 'two Transfer-Encoding fields (gzip, then chunked)',
    send: [post('t', 'Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n', '3\r\nabc\r\n0\r\n\r\n')],
    svc: [400],
    closes: true,
    forwards: 0,
  },
  {
    id: 'te-http10',
    issue: 5,
    what: 'chunked on HTTP/1.0',
    send: [`POST /good/t HTTP/1.0\r\n${H}${CHUNKED}\r\n3\r\nabc\r\n0\r\n\r\n`],
    svc: [400],
    closes: true,
    forwards: 0,
  },
  {
    id: 'response-te-gzip-chunked',
    issue: 5,
    what: 'upstream answers `Transfer-Encoding: gzip, chunked`',
    send: [`GET /good/gzipchunked HTTP/1.1\r\n${H}\r\n`],
    svc: [502],
  },
  {
    id: 'host-missing',
    issue: 6,
    what: 'HTTP/1.1 without Host',
    send: ['GET /good/ HTTP/1.1\r\n\r\n'],
    svc: [400],
    closes: true,
    forwards: 0,
  },
  {
    id: 'host-twice',
    issue: 6,
    what: 'two Host fields',
    send: [`GET /good/ HTTP/1.1\r\n${H}Host: y\r\n\r\n`],
    svc: [400],
    closes: true,
    forwards: 0,
  },
  {
    id: 'host-empty',
    issue: 6,
    what: 'an empty Host',
    send: ['GET /good/ HTTP/1.1\r\nHost:\r\n\r\n'],
    svc: [400],
    closes: true,
    forwards: 0,
  },
  {
    id: 'host-invalid',
    issue: 6,
    what: '`Host: a b/c@d`',
    send: ['GET /good/ HTTP/1.1\r\nHost: a b/c@d\r\n\r\n'],
    svc: [400],
    closes: true,
    forwards: 0,
  },
  {
    id: 'chunk-size-zz',
    issue: 7,
    what: 'chunk size `zz`',
    send: [post('b', CHUNKED, 'zz\r\nabc\r\n0\r\n\r\n')],
    svc: [400],
    closes: true,
    forwards: 0,
  },
  {
    id: 'chunk-size-negative',
    issue: 7,
    what: 'chunk size `-3`',
    send: [post('b', CHUNKED, '-3\r\nabc\r\n0\r\n\r\n')],
    svc: [400],
    closes: true,
    forwards: 0,
  },
  {
    id: 'chunk-data-long',
    issue: 7,
    what: 'chunk data longer than its size',
    send: [post('b', CHUNKED, '3\r\nabcdef\r\n0\r\n\r\n')],
    svc: [400],
    closes: true,
    forwards: 0,
  },
  {
    id: 'te-xchunked',
    issue: 7,
    what: '`Transfer-Encoding: xchunked`',
    send: [post('b', 'Transfer-Encoding: xchunked\r\n', '3\r\nabc\r\n0\r\n\r\n')],
    svc: [501],
    closes: true,
    forwards: 0,
  },
  {
    id: 'trailer-content-length',
    issue: 7,
    what: 'Content-Length in a trailer',
    send: [post('b', CHUNKED, '3\r\nabc\r\n0\r\nContent-Length: 5\r\n\r\n')],
    svc: [400],
    closes: true,
    forwards: 0,
  },
  {
    id: 'valid-then-garbage',
    issue: 7,
    what: 'a valid POST, then garbage, in one packet',
    send: [post('v', 'Content-Length: 3\r\n', 'abc') + '\u0001\u0002garbage\r\n\r\n'],
    svc: [200, 400],
    closes: true,
    forwards: 1,
  },
  {
    id: 'request-trailers',
    issue: 8,
    what: 'trailers from the client (X-Forwarded-For, X-Real-IP, Host)',
    send: [
      post(
        'tr',
        CHUNKED,
        '3\r\nabc\r\n0\r\nX-Forwarded-For: 10.0.0.1\r\nX-Real-IP: 10.0.0.2\r\nHost: evil.example\r\n\r\n',
      ),
    ],
    svc: [200],
    forwards: 1,
    never: ['10.0.0.1', '10.0.0.2', 'evil.example'],
  },
  {
    id: 'encoded-slash-traversal',
    issue: 9,
    what: '`/good/..%2f..%2fother`',
    send: [`GET /good/..%2f..%2fother HTTP/1.1\r\n${H}\r\n`],
    svc: [400],
    forwards: 0,
  },
  {
    id: 'encoded-slash',
    issue: 9,
    what: '`/good/a%2fb`',
    send: [`GET /good/a%2fb HTTP/1.1\r\n${H}\r\n`],
    svc: [400],
    forwards: 0,
  },
  {
    id: 'http-2.0-line',
    issue: 10,
    what: 'an `HTTP/2.0` request line',
    send: [`GET /good/ HTTP/2.0\r\n${H}\r\n`],
    svc: [505],
    closes: true,
    forwards: 0,
  },
  {
    id: 'http-0.9',
    issue: 10,
    what: 'an HTTP/0.9 request (`GET /good/`)',
    send: ['GET /good/\r\n'],
    svc: [400],
    closes: true,
    forwards: 0,
    opts: {quietMs: 3000, limitMs: 4000},
    check(c) {
      if (c.ms > 1000) fail(`answered after ${c.ms} ms`)
    },
    nodeHttp: {
      why: "node's parser reads the line as HTTP/0.9 and waits for a head; no public API shows it the bytes: the headers timeout ends it",
      svc: [408],
      opts: {quietMs: 3000, limitMs: 6000},
      check(c) {
        if (c.ms > 5000) fail(`answered after ${c.ms} ms`)
      },
    },
  },
  {
    id: 'request-line-100k',
    issue: 10,
    what: 'a 100 KB request line',
    send: [`GET /good/${'a'.repeat(100_000)} HTTP/1.1\r\n${H}\r\n`],
    svc: [414],
    closes: true,
    forwards: 0,
  },
  {
    id: 'response-bare-lf',
    issue: 12,
    what: 'upstream ends its lines with a bare LF (busybox CGI)',
    send: [`GET /good/barelf HTTP/1.1\r\n${H}\r\n`],
    svc: [200],
    check(c) {
      if (c.responses[0]?.body !== 'ok') fail('the body was lost')
    },
    nodeHttp: {
      why: "node's client parser refuses a bare LF, and its one public leniency (insecureHTTPParser) would also pass Content-Length with Transfer-Encoding",
      svc: [502],
    },
  },
  {
    id: 'request-bare-lf',
    issue: 12,
    what: 'a client ends its lines with a bare LF',
    send: ['GET /good/ HTTP/1.1\nHost: x\n\n'],
    svc: [400],
    closes: true,
    forwards: 0,
  },
  {
    id: 'cl-te',
    issue: 'held',
    what: 'Content-Length then Transfer-Encoding: chunked',
    send: [post('s', 'Content-Length: 3\r\n' + CHUNKED, '0\r\n\r\n')],
    svc: [400],
    closes: true,
    forwards: 0,
  },
  {
    id: 'te-cl',
    issue: 'held',
    what: 'Transfer-Encoding: chunked then Content-Length',
    send: [post('s', CHUNKED + 'Content-Length: 3\r\n', '0\r\n\r\n')],
    svc: [400],
    closes: true,
    forwards: 0,
  },
  {
    id: 'duplicate-content-length',
    issue: 'held',
    what: 'two equal Content-Length fields',
    send: [post('s', 'Content-Length: 3\r\nContent-Length: 3\r\n', 'abc')],
    svc: [400],
    closes: true,
    forwards: 0,
  },
  {
    id: 'obs-fold',
    issue: 'held',
    what: 'an obs-folded field',
    send: [`GET /good/ HTTP/1.1\r\n${H}X-A: a\r\n b\r\n\r\n`],
    svc: [400],
    closes: true,
    forwards: 0,
  },
  {
    id: 'nul-in-field',
    issue: 'held',
    what: 'a NUL byte in a field value',
    send: [`GET /good/ HTTP/1.1\r\n${H}X-A: a\u0000b\r\n\r\n`],
    svc: [400],
    closes: true,
    forwards: 0,
  },
  {
    id: 'head-1mb',
    issue: 'held',
    what: 'a 1 MB head (16,000 fields)',
    send: [`GET /good/ HTTP/1.1\r\n${H}${MANY_FIELDS}\r\n`],
    svc: [431],
    closes: true,
    forwards: 0,
  },
  {
    id: 'pipelined-bodies',
    issue: 'held',
    what: 'two POSTs with bodies in one packet',
    send: [post('p1', 'Content-Length: 3\r\n', 'abc') + post('p2', 'Content-Length: 3\r\n', 'def')],
    svc: [200, 200],
    forwards: 2,
    check(c, up) {
      const bodies = up.requests().map((r) => r.body)
      if (bodies.join(',') !== 'abc,def') fail(`bodies ${bodies.join(',')}`)
      if (!c.responses[1]?.body.includes('/p2')) fail('the second answer is not the second request')
    },
  },
  {
    id: 'absolute-form',
    issue: 'held',
    what: 'an absolute-form target (`GET http://127.0.0.1:1/`)',
    send: [`GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n`],
    svc: [400],
    forwards: 0,
  },
  {
    id: 'authority-form',
    issue: 'held',
    what: '`CONNECT 127.0.0.1:1`',
    send: ['CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n'],
    svc: [405],
    closes: true,
    forwards: 0,
  },
  {
    id: 'encoded-dot-segments',
    issue: 'held',
    what: '`/good/%2e%2e/other/`',
    send: [`GET /good/%2e%2e/other/ HTTP/1.1\r\n${H}\r\n`],
    svc: [404],
    forwards: 0,
  },
  {
    id: 'slow-upstream',
    issue: 'held',
    what: 'an upstream that answers after 300 ms',
    send: [`GET /good/slow HTTP/1.1\r\n${H}\r\n`],
    svc: [200],
    forwards: 1,
  },
  {
    id: 'hanging-upstream',
    issue: 'held',
    what: 'an upstream that never answers',
    send: [`GET /good/hang HTTP/1.1\r\n${H}\r\n`],
    svc: [504],
    forwards: 1,
    opts: {quietMs: 3500, limitMs: 5000},
  },
]
