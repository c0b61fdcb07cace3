import {describe, expect, it} from 'vitest'

import {BackendUnavailableError, formatError, withBackendOrigin} from '../../src/lib/errors.js'
import {registratorBackend, singleDashFlag} from '../../src/lib/usage.js'

describe("registrator's habits", () => {
  it('names a single-dash long flag in its two-dash form, only when it is a flag', () => {
    expect(singleDashFlag('-internal', ['internal', 'ip'])).toBe('--internal')
    expect(singleDashFlag('-ip=10.0.0.1', ['internal', 'ip'])).toBe('--ip=10.0.0.1')
    expect(singleDashFlag('-bogus', ['internal'])).toBeUndefined()
    expect(singleDashFlag('--internal', ['internal'])).toBeUndefined()
  })

  it('turns the positional registry URI into --backend', () => {
    expect(registratorBackend('agent:consul://127.0.0.1:8500')).toBe('svc agent --backend consul://127.0.0.1:8500')
    expect(registratorBackend('agent:zk://h1:2181,h2:2181/services')).toBe(
      'svc agent --backend zk://h1:2181,h2:2181/services',
    )
    expect(registratorBackend('reslove:web')).toBeUndefined()
  })
})

describe('one-line errors', () => {
  it("drops oclif's help note, and a flag name the message already holds", () => {
    expect(formatError(new Error('Parsing --port \n\tinvalid port "0"\nSee more help with --help'))).toBe(
      '--port: invalid port "0"',
    )
    expect(formatError(new Error('Parsing --route \n\tinvalid --route "api"\nSee more help with --help'))).toBe(
      'invalid --route "api"',
    )
  })

  it('names where the backend address came from in the hint', () => {
    const error = new BackendUnavailableError('consul', '127.0.0.1:1', 'refused')
    expect(formatError(error)).toMatch(/that --backend \(or SVC_BACKEND\) names/)
    expect(formatError(withBackendOrigin(error, 'CONSUL_HTTP_ADDR'))).toBe(
      'cannot reach consul at 127.0.0.1:1 (refused): check that the servers run and that CONSUL_HTTP_ADDR names their client addresses',
    )
    const other = new Error('not a backend error')
    expect(withBackendOrigin(other, 'SVC_BACKEND')).toBe(other)
  })
})
