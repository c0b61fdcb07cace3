/** The ratios bench/proxy.ts prints against the goals, from the medians and from each round. */

export interface Result {
  rps: number
  p99Ms: number
  errors: number
  /** CPU time the target's own processes spent per request, in µs (what it costs, whatever the machine's load). */
  cpuUs: number
}

export interface Median {
  rps: number
  p99: number
  cpu: number
  errors: number
}

function goal(label: string, value: number, ok: boolean, want: string): void {
  console.log(`  ${label.padEnd(24)} ${value.toFixed(2).padStart(6)}  (goal ${want}: ${ok ? 'met' : 'NOT met'})`)
}

function reported(label: string, value: number, why: string): void {
  console.log(`  ${label.padEnd(24)} ${value.toFixed(2).padStart(6)}  (${why})`)
}

export function printRatios(med: (name: string) => Median, results: Map<string, Result[]>): void {
  const svc = med('svc')
  const nginx = med('nginx')
  const haproxy = med('haproxy')
  const article = med('article')
  const fallback = med('svc-nh')
  console.log('\nratios (issue 18 goals):')
  goal('svc/nginx req/s', svc.rps / nginx.rps, svc.rps / nginx.rps >= 0.7, '>= 0.7')
  goal('svc p99 / nginx p99', svc.p99 / nginx.p99, svc.p99 <= 1.5 * nginx.p99, '<= 1.5')
  goal('svc cpu/req / nginx', svc.cpu / nginx.cpu, svc.cpu <= 1.4 * nginx.cpu, '<= 1.4')
  goal('svc/article req/s', svc.rps / article.rps, svc.rps / article.rps >= 10, '>= 10')
  reported('svc/haproxy req/s', svc.rps / haproxy.rps, 'the second peer: reported')
  reported('svc cpu/req / haproxy', svc.cpu / haproxy.cpu, 'the second peer: reported')
  reported('haproxy/nginx req/s', haproxy.rps / nginx.rps, 'the peers side by side')
  reported('svc-nh/svc req/s', fallback.rps / svc.rps, 'the fallback engine: reported, no goal')
  reported('svc-nh cpu/req / nginx', fallback.cpu / nginx.cpu, 'the fallback engine: reported, no goal')
  // the same ratios within each round (targets measured minutes apart on a shared machine drift)
  const per = (a: string, b: string, f: (r: Result) => number): string =>
    results
      .get(a)!
      .map((r, i) => (f(r) / f(results.get(b)![i]!)).toFixed(2))
      .join(' ')
  console.log(
    `  per round: svc/nginx ${per('svc', 'nginx', (r) => r.rps)}; p99 svc/nginx ${per('svc', 'nginx', (r) => r.p99Ms)}; cpu svc/nginx ${per('svc', 'nginx', (r) => r.cpuUs)}; svc/haproxy ${per('svc', 'haproxy', (r) => r.rps)}`,
  )
}
