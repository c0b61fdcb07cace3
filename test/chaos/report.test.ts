import {describe, expect, it} from 'vitest'

import type {KillInstanceReport} from '../../src/lib/chaos/kill-instance.js'
import type {KillLeaderReport} from '../../src/lib/chaos/kill-leader.js'
import {killInstanceRows, killInstanceSummary, killLeaderRows} from '../../src/lib/chaos/report.js'
import {renderTable} from '../../src/lib/render/table.js'

const leaderReport: KillLeaderReport = {
  drill: 'kill-leader',
  backend: 'zk',
  uri: 'zk://127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183/services',
  signal: 'KILL',
  members: [
    {name: '127.0.0.1:2181', address: '127.0.0.1:2181', role: 'leader', up: true},
    {name: '127.0.0.1:2182', address: '127.0.0.1:2182', role: 'follower', up: true},
    {name: '127.0.0.1:2183', address: '127.0.0.1:2183', role: 'follower', up: true},
  ],
  leader: {name: '127.0.0.1:2181', address: '127.0.0.1:2181'},
  target: {kind: 'process', description: 'process 4242 (java: java -cp ...)', pid: 4242},
  faultAt: '2026-11-21T10:00:00.000Z',
  newLeader: {name: '127.0.0.1:2183', address: '127.0.0.1:2183'},
  newLeaderAt: '2026-11-21T10:00:00.612Z',
  newLeaderMs: 612,
  writes: {
    intervalMs: 50,
    attempted: 60,
    acknowledged: 58,
    failed: 2,
    ackedBeforeFault: 10,
    verified: true,
    lost: 0,
    lostSeqs: [],
    unavailableMs: 730,
    firstAckAfterFaultMs: 690,
  },
  registrations: {before: 2, resolving: 2, missing: []},
  restart: {
    at: '2026-11-21T10:00:02.000Z',
    afterMs: 2000,
    how: 'resumed with SIGCONT',
    pid: 4242,
    rejoinMs: 950,
    caughtUpMs: 1100,
  },
  notes: [],
  problems: [],
  ok: true,
}

describe('kill-leader report', () => {
  it('renders as plain aligned lines off a terminal', async () => {
    const text = await renderTable(['MEASURE', 'VALUE'], killLeaderRows(leaderReport), false)
    expect(text.split('\n')).toEqual([
      'MEASURE                   VALUE',
      'backend                   zk zk://127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183/services',
      'members                   127.0.0.1:2181 leader, 127.0.0.1:2182 follower, 127.0.0.1:2183 follower',
      'killed leader             127.0.0.1:2181 with SIGKILL',
      'stopped                   process 4242 (java: java -cp ...)',
      'new leader                127.0.0.1:2183',
      'new leader after          612ms',
      'write unavailability      730ms (longest gap between acknowledged writes, every 50ms)',
      'first write after fault   690ms',
      'writes                    60 attempted, 58 acknowledged, 2 failed',
      'acknowledged writes lost  0 (of 58; 10 before the fault)',
      'registrations resolving   2 of 2',
      'restarted after           2s: resumed with SIGCONT (pid 4242)',
      'rejoined                  950ms',
      'caught up                 1.1s',
      'result                    ok',
    ])
  })

  it('names the problems and the failed result', () => {
    const rows = killLeaderRows({
      ...leaderReport,
      newLeader: undefined,
      newLeaderMs: undefined,
      restart: undefined,
      problems: ['no new leader within 60000 ms'],
      ok: false,
    })
    expect(rows).toContainEqual(['new leader', 'none'])
    expect(rows).toContainEqual(['PROBLEM', 'no new leader within 60000 ms'])
    expect(rows.at(-1)).toEqual(['result', 'FAILED'])
  })
})

describe('kill-instance report', () => {
  it('has a row per instance and a summary with the load', () => {
    const report: KillInstanceReport = {
      drill: 'kill-instance',
      service: 'web',
      uri: 'local:///tmp/r',
      signal: 'KILL',
      before: 2,
      instances: [
        {
          id: 'web:127.0.0.1:8080',
          address: '127.0.0.1',
          port: 8080,
          target: {kind: 'process', description: 'process 1 (node: node server.js)', pid: 1},
          goneMs: 840,
          how: 'unhealthy',
        },
      ],
      load: {
        url: 'http://127.0.0.1:9000/web/',
        ratePerSecond: 20,
        sent: 60,
        failed: 9,
        statuses: {'200': 51, error: 9},
      },
      problems: [],
      ok: true,
    }
    expect(killInstanceRows(report)).toEqual([
      ['web:127.0.0.1:8080', '127.0.0.1:8080', 'process 1 (node: node server.js)', '840ms (unhealthy)'],
    ])
    expect(killInstanceSummary(report)).toEqual([
      'service web on local:///tmp/r: stopped 1 of 2 instances with SIGKILL',
      'load through http://127.0.0.1:9000/web/: 60 requests at 20/s, 9 failed (200: 51, error: 9)',
      'result: ok',
    ])
  })
})
