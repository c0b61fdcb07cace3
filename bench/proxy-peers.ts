/**
 * The peers' configurations for bench/proxy.ts: nginx and HAProxy, each one worker/thread, keep-alive to the same
 * 2 upstreams, `/bench/<path>` forwarded as `/<path>` (what `svc proxy` does with a service's prefix).
 */

/** Debian nginx-light as a reverse proxy: 1 worker, keepalive upstream, private prefix, daemon off. */
export function nginxConfig(prefix: string, port: number, upstreams: readonly number[]): string {
  return `worker_processes 1;
daemon off;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${prefix}/tmp/body;
  proxy_temp_path ${prefix}/tmp/proxy;
  fastcgi_temp_path ${prefix}/tmp/fastcgi;
  uwsgi_temp_path ${prefix}/tmp/uwsgi;
  scgi_temp_path ${prefix}/tmp/scgi;
  upstream bench { ${upstreams.map((p) => `server 127.0.0.1:${p};`).join(' ')} keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    location /bench/ {
      proxy_pass http://bench/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`
}

/** Debian HAProxy: one thread, keep-alive both sides, idle upstream connections shared by every client (reuse always). */
export function haproxyConfig(dir: string, port: number, upstreams: readonly number[]): string {
  return `global
  nbthread 1
  maxconn 4096
  pidfile ${dir}/haproxy.pid
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  http-reuse always
frontend bench
  bind 127.0.0.1:${port}
  default_backend bench
backend bench
  balance roundrobin
  http-request replace-path ^/bench(/.*)$ \\1
${upstreams.map((p, i) => `  server s${i + 1} 127.0.0.1:${p}`).join('\n')}
`
}
