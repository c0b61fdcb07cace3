import {type ChildProcess, execFileSync, spawn} from 'node:child_process'
import {once} from 'node:events'
import {existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {type AddressInfo, connect, createServer} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

export const NGINX = '/usr/sbin/nginx'

/** A port free on 127.0.0.1 right now (nginx takes no port 0). */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const {port} = server.address() as AddressInfo
  await new Promise<void>((resolve) => {
    server.close(() => resolve())
  })
  return port
}

/** A real nginx (one worker, `daemon off`) on 127.0.0.1, proxying `/good/` to an upstream as svc proxy does. */
export interface TestNginx {
  address: string
  stop(): Promise<void>
}

/** A private nginx: its prefix directory, its config file, the port it listens on, how to reload it. */
export interface PrivateNginx extends TestNginx {
  port: number
  dir: string
  conf: string
  /** The shell command that reloads this nginx (and only it): `nginx -s reload -p DIR -c CONF`. */
  reloadCommand: string
  /** How many worker processes run now: above 1 while a reload's old worker is still shutting down. */
  workers(): number
}

/**
 * Starts nginx from its own config in a temp dir, with the `http` block's directives from `http(port, dir)` (temp
 * paths and logs are set already). Resolves once it accepts connections (bounded: 5 s); `stop` is SIGQUIT, then
 * SIGKILL after 3 s, and removes the directory.
 */
export async function startPrivateNginx(http: (port: number, dir: string) => string): Promise<PrivateNginx> {
  const dir = mkdtempSync(path.join(tmpdir(), 'svc-nginx-'))
  const port = await freePort()
  const conf = path.join(dir, 'nginx.conf')
  writeFileSync(
    conf,
    `worker_processes 1;
daemon off;
user root;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${http(port, dir)}
}
`,
  )
  const child: ChildProcess = spawn(NGINX, ['-p', dir, '-c', conf], {stdio: 'ignore'})
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit')
      child.kill('SIGQUIT')
      await Promise.race([exited, sleep(3000)])
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    }

    rmSync(dir, {recursive: true, force: true})
  }

  const deadline = Date.now() + 5000
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy()
        resolve(true)
      })
      s.on('error', () => resolve(false))
    })
    if (up) break
    if (Date.now() > deadline || child.exitCode !== null) {
      const logFile = path.join(dir, 'error.log')
      const log = existsSync(logFile) ? readFileSync(logFile, 'utf8').trim().split('\n').slice(-3).join(' | ') : ''
      await stop()
      throw new Error(`nginx did not start: ${log}`)
    }

    await sleep(50)
  }

  return {
    address: `127.0.0.1:${port}`,
    port,
    dir,
    conf,
    reloadCommand: `${NGINX} -s reload -p ${dir} -c ${conf}`,
    workers: () =>
      execFileSync('ps', ['-o', 'pid=', '--ppid', String(child.pid)], {encoding: 'utf8'})
        .split('\n')
        .filter((line) => line.trim() !== '').length,
    stop,
  }
}

/**
 * Starts nginx: `/good/<path>` goes to `upstreamPort` as `/<path>` on kept-alive HTTP/1.1 connections, with
 * WebSocket upgrades passed (the usual `map $http_upgrade` recipe); read timeout `timeoutS`.
 */
export async function startNginx(upstreamPort: number, timeoutS: number): Promise<TestNginx> {
  return startPrivateNginx(
    (port) => `  map $http_upgrade $connection_upgrade { default upgrade; '' ''; }
  upstream good { server 127.0.0.1:${upstreamPort}; keepalive 8; }
  server {
    listen 127.0.0.1:${port};
    keepalive_timeout 2s;
    location /good/ {
      proxy_pass http://good/;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout ${timeoutS}s;
    }
  }`,
  )
}
