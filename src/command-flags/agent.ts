import * as Flags from '@oclif/core/flags'

import {durationDefault, durationFlag} from '../flags.js'

/** `svc agent`'s flags: registrator's, with svc's duration type. */
export const agentFlags = {
  'docker-host': Flags.string({
    description: 'Docker daemon: unix:///var/run/docker.sock or tcp://host:port',
    env: 'DOCKER_HOST',
  }),
  ip: Flags.string({description: 'address to advertise for every published port'}),
  internal: Flags.boolean({description: "register exposed ports at the container's own address"}),
  explicit: Flags.boolean({description: 'register only containers that set SERVICE_NAME or SERVICE_<port>_NAME'}),
  tags: Flags.string({description: 'tags added to every instance, comma-separated'}),
  network: Flags.string({description: 'on multi-network containers, the network whose address to use'}),
  resync: durationFlag({description: 're-list containers and reconcile this often (e.g. 60s, 5m)'}),
  cleanup: Flags.boolean({
    description: "at start-up and on each resync, remove this host's instances whose container no longer runs",
  }),
  deregister: Flags.string({
    description:
      'always: deregister containers that exit; on-success: only those exiting with 0, the others stay, critical',
    options: ['always', 'on-success'],
    default: 'always',
  }),
  ttl: durationFlag({description: 'liveness bound of each registration (heartbeat, lease, session, TTL check)'}),
  'ttl-refresh': durationFlag({
    description:
      'how often liveness is refreshed (local heartbeat, Consul TTL check, etcd lease keep-alive); default a third of the TTL, must be below it; refused on ZooKeeper, whose client pings its session by itself',
  }),
  'retry-attempts': Flags.integer({
    description: 'retries of the backend connection at start-up; -1 = forever',
    default: 0,
  }),
  'retry-interval': durationFlag({description: 'time between those attempts', ...durationDefault(2000)}),
  hostname: Flags.string({
    description: "this host in instance ids and for --cleanup [default: the machine's host name]",
  }),
  metrics: Flags.string({description: 'serve Prometheus metrics at HOST:PORT'}),
  skydns: Flags.boolean({description: "etcd: also write the SkyDNS layout CoreDNS's etcd plugin reads (docs/dns.md)"}),
  'skydns-prefix': Flags.string({description: 'with --skydns: the etcd path of the layout', default: '/skydns'}),
  'skydns-domain': Flags.string({description: 'with --skydns: the zone of the records', default: 'skydns.local'}),
}
