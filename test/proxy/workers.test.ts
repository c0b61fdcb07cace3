import {describe, expect, it} from 'vitest'

import {withoutFlags} from '../../src/lib/proxy/workers.js'

describe('withoutFlags', () => {
  const secret = [{name: 'backend', char: 'b'}, {name: 'token'}, {name: 'zk-auth'}]

  it('drops the named flags in every form, with their values, and keeps the rest', () => {
    expect(
      withoutFlags(
        [
          'proxy',
          '-b',
          'zk://u:p@h',
          '--workers',
          '2',
          '--token=t0k',
          '--zk-auth',
          'u:p',
          '-bzk://u:p@h',
          '--backend=etcd://u:p@h',
          '--backend',
          'local',
          '-l',
          '127.0.0.1:0',
          '--tokenish',
          'x',
        ],
        secret,
      ),
    ).toEqual(['proxy', '--workers', '2', '-l', '127.0.0.1:0', '--tokenish', 'x'])
  })

  it('leaves what follows -- alone', () => {
    expect(withoutFlags(['proxy', '--', '--token', 'x'], secret)).toEqual(['proxy', '--', '--token', 'x'])
  })
})
