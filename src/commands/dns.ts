import * as Flags from '@oclif/core/flags'

import {durationDefault, durationFlag} from '../flags.js'
import {DNS_DEFAULTS} from '../lib/dns/index.js'
import {serveDns} from '../lib/dns/serve.js'
import {RegistryCommand} from '../registry-command.js'

export default class Dns extends RegistryCommand<typeof Dns> {
  static summary = "DNS server (UDP and TCP) answering from the registry with Consul's names."
  static description = `Answers <service>.service.<domain> (A, AAAA, SRV), <tag>.<service>.service.<domain> and _<service>._tcp.service.<domain> (SRV) from one watch of every service: no query reads the backend, and a change is in the next answer. Instances that are not critical are answered (passing, warning, and unknown: a record without health), as Consul does by default; --only-passing keeps only passing ones.
Unknown names (and services without an answered instance) get NXDOMAIN with the zone's SOA, whose minimum is --negative-ttl; a known name asked for another type gets an empty NOERROR. Answers are shuffled. UDP answers larger than 512 bytes (or the EDNS size the client offers) are cut and flagged TC; over TCP they are whole. Names outside the domain go to --recursor (SERVFAIL when it does not answer within --recursor-timeout), else are REFUSED. See docs/dns.md.`

  static examples = [
    '<%= config.bin %> dns -b zk://127.0.0.1:2181',
    'dig @127.0.0.1 -p 8600 web.service.consul +short',
    '<%= config.bin %> dns --listen 0.0.0.0:53 --domain svc.internal --ttl 5 --recursor 1.1.1.1:53 -b etcd',
  ]

  static flags = {
    listen: Flags.string({
      char: 'l',
      description: 'address to serve on, UDP and TCP, HOST:PORT (port 0: a free port, printed at start)',
      default: DNS_DEFAULTS.listen,
      env: 'SVC_DNS_LISTEN',
    }),
    domain: Flags.string({description: 'the domain answered', default: DNS_DEFAULTS.domain}),
    datacenter: Flags.string({
      description: 'the datacenter label names may carry (web.service.dc1.consul), as in Consul',
      default: DNS_DEFAULTS.datacenter,
    }),
    ttl: Flags.integer({description: 'TTL of answers, in seconds', default: DNS_DEFAULTS.ttlSeconds, min: 0}),
    'negative-ttl': Flags.integer({
      description: 'TTL of negative answers (the SOA minimum), in seconds',
      default: 0,
      min: 0,
    }),
    'only-passing': Flags.boolean({description: 'answer passing instances only (not warning or unknown ones)'}),
    recursor: Flags.string({description: 'forward names outside the domain to this resolver, HOST:PORT'}),
    'recursor-timeout': durationFlag({
      description: 'how long to wait for the recursor',
      ...durationDefault(DNS_DEFAULTS.recursorTimeoutMs),
    }),
  }

  async run(): Promise<void> {
    await serveDns({
      flags: this.flags,
      registry: () => this.registry(),
      signal: this.untilSignal(),
      out: (line) => this.log(line),
      log: (line) => this.warnLine(line),
    })
  }
}
