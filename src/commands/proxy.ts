import {proxyFlags, withAccessLogValue, workerBackend} from '../command-flags/proxy.js'
import {runGateway} from '../lib/gateway.js'
import {RegistryCommand} from '../registry-command.js'

export default class Proxy extends RegistryCommand<typeof Proxy> {
  static summary = 'HTTP gateway: /<service>/<path> goes to a healthy instance of <service>.'
  static description = `Forwards each request to a healthy (passing) instance of the service it names, from a route table kept in memory by the registry's watch stream: /<service>/<path> goes to the instance as /<path>, query kept. --route adds explicit prefixes (longest wins); --host-routing routes Host <service>.<anything>. Unknown service: 404; no healthy instance: 503 with Retry-After: 2. Only registered services are reachable.
Instances with repeated connection failures or 5xx answers are ejected for a growing time (never all of a service); idempotent requests that fail to connect, or whose instance leaves, are retried on up to two other instances. Keep-alive pools, streaming both ways, WebSocket upgrades (tunnelled only after the upstream's 101), X-Forwarded-For/-Proto/-Host (a client's own are dropped unless it is a --trusted-proxy). What is refused at the edge, and how: docs/security.md.
Slow or oversized clients are cut off: heads over --max-header-size get 431, targets over --max-url-length 414, heads slower than --header-timeout and bodies stalled for --body-timeout 408. Dot segments are resolved before routing; a path whose .. segments leave the service it names gets 404. SIGTERM or SIGINT drains: no new connections, requests in flight finish (bounded by --drain-timeout).
--access-log [FILE] writes a line per request (stderr, or appended to FILE; --access-log-format svc, combined or json); SIGUSR1 reopens FILE for logrotate. --admin-listen serves the route page on /, refreshed from /routes every second.`

  static examples = [
    '<%= config.bin %> proxy',
    '<%= config.bin %> proxy --listen 0.0.0.0:8080 --admin-listen 127.0.0.1:9901 -b etcd',
    '<%= config.bin %> proxy --route /api=api-v2 --route /=web --strategy least-conn',
    '<%= config.bin %> proxy --strategy hash --hash-key cookie:session --workers 2',
    '<%= config.bin %> proxy --access-log /var/log/svc/access.log --access-log-format combined',
  ]

  static flags = proxyFlags

  async init(): Promise<void> {
    this.argv = withAccessLogValue(this.argv)
    await super.init()
  }

  async run(): Promise<void> {
    await runGateway({
      flags: this.flags,
      registry: () => this.registry(),
      workerBackend: async () => workerBackend(await this.backendSettings(), process.argv.slice(2)),
      signal: this.untilSignal(),
      out: (line) => this.log(line),
      log: (line) => this.warnLine(line),
    })
  }
}
