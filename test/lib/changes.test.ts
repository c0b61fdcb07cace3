import {describe, expect, it} from 'vitest'

import type {ServiceInstance} from '../../src/lib/registry/types.js'
import {describeDifference, formatChange, toChanges} from '../../src/lib/watch/changes.js'

const inst = (extra: Partial<ServiceInstance> = {}): ServiceInstance => ({
  service: 'web',
  id: 'web-1',
  address: '10.0.0.1',
  port: 80,
  tags: ['v1'],
  meta: {version: '1'},
  health: 'passing',
  ...extra,
})

describe('watch change records', () => {
  const now = new Date('2026-11-21T10:00:00.123Z')

  it('turns a snapshot into added records and ignores status events', () => {
    const records = toChanges({type: 'snapshot', instances: [inst(), inst({id: 'web-2'})]}, now)
    expect(records.map((r) => [r.type, r.instance.id, r.ts])).toEqual([
      ['added', 'web-1', '2026-11-21T10:00:00.123Z'],
      ['added', 'web-2', '2026-11-21T10:00:00.123Z'],
    ])
    expect(toChanges({type: 'status', state: 'reconnecting', detail: 'x'}, now)).toEqual([])
  })

  it('formats one line per change, saying what changed', () => {
    const [added] = toChanges({type: 'added', instance: inst()}, now)
    expect(formatChange(added!)).toBe('10:00:00.123 added   web web-1 10.0.0.1:80 passing tags=v1')
    const after = inst({health: 'critical', tags: ['v2'], meta: {}})
    const [changed] = toChanges({type: 'changed', instance: after, previous: inst()}, now)
    expect(formatChange(changed!, inst())).toBe(
      '10:00:00.123 changed web web-1 10.0.0.1:80 critical (health passing -> critical, tags v1 -> v2, meta version=(removed))',
    )
    expect(describeDifference(inst({tags: ['a', 'b']}), inst({tags: ['b', 'a']}))).toBe('')
  })
})
