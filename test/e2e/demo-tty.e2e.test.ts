import {execFileSync, spawnSync} from 'node:child_process'
import {mkdirSync, mkdtempSync, readdirSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'

import {BIN, eventually, ROOT} from '../helpers/cli.js'

// tmux comes with scripts/install-backends.sh; without it this test must fail, not pass silently
if (spawnSync('tmux', ['-V']).status !== 0) throw new Error('tmux is missing: run scripts/install-backends.sh')
const root = mkdtempSync(path.join(tmpdir(), 'svc-demo-tty-'))
const tmp = path.join(root, 'tmp')
mkdirSync(tmp)
const socket = `svc-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`
const WIDTH = 100

function tmux(...args: string[]): string {
  return execFileSync('tmux', ['-L', socket, ...args], {encoding: 'utf8', timeout: 5000})
}

const quote = (s: string): string => `'${s.replaceAll("'", String.raw`'\''`)}'`

describe('svc demo in a real terminal', () => {
  afterAll(() => {
    spawnSync('tmux', ['-L', socket, 'kill-server'], {timeout: 5000})
    // kill-server leaves the socket file behind
    rmSync(path.join(process.env.TMUX_TMPDIR ?? '/tmp', `tmux-${process.getuid?.() ?? 0}`, socket), {force: true})
    rmSync(root, {recursive: true, force: true})
  })

  it('walks through the steps with pauses and ends with every step done', async () => {
    const session = 'demo'
    // the walkthrough draws only outside CI; a real terminal is what this test is about
    const command = [
      `cd ${quote(ROOT)} &&`,
      `env -u CI HOME=${quote(root)} SVC_HOME=${quote(path.join(root, 'svc'))} TMPDIR=${quote(tmp)}`,
      `${quote(process.execPath)} ${quote(BIN)} demo --pace 1s;`,
      'echo "svc-exit=$?"; exec sleep 300',
    ].join(' ')
    tmux('new-session', '-d', '-s', session, '-x', String(WIDTH), '-y', '45', command)
    const screen = (): string => tmux('capture-pane', '-p', '-t', session)
    const showing = (pattern: RegExp, timeoutMs = 60_000) =>
      eventually(async () => pattern.test(screen()) && screen(), timeoutMs, 100)

    // paced: between steps the walkthrough waits, saying so, with the next steps not started yet
    const paused = await showing(/next step in 1s…/)
    expect(paused).toMatch(/^ ✓ 1 {2}Start 3 instances of "web" and register them$/m)
    expect(paused).toMatch(/^ {6}3 instances registered: web-1 on :\d+, web-2 on :\d+, web-3 on :\d+$/m)
    expect(paused).toMatch(/^ ○ 5 {2}Clean up$/m)

    const final = await showing(/^svc-exit=\d+$/m)
    process.stderr.write(`[demo tty e2e] final screen:\n${final}\n`)
    expect(final).toMatch(/^svc-exit=0$/m)
    const titles = [
      'Start 3 instances of "web" and register them',
      'Resolve "web"',
      'Send 60 requests through the proxy',
      'Stop one instance while requests keep coming',
      'Clean up',
    ]
    for (const [i, title] of titles.entries()) expect(final).toContain(` ✓ ${i + 1}  ${title}`)
    expect(final).toMatch(/^ {6}60 requests, 0 failed, spread 20 \/ 20 \/ 20 over 3 instances$/m)
    expect(final).toMatch(/^ {6}web-2 stopped under load: route table 3 → 2, 0 of \d+ requests failed$/m)
    expect(final).toMatch(/^ {6}nothing left: proxy stopped, 3 instance processes gone, 0 registrations/m)
    expect(final).toMatch(/^ {4}temp dir: +removed$/m)
    expect(final).toMatch(/^✓ demo finished in .*: every step as expected, nothing left behind$/m)
    expect(final).not.toMatch(/[✗⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]/)
    for (const line of final.split('\n')) expect(line.length).toBeLessThanOrEqual(WIDTH)
    expect(readdirSync(tmp).filter((name) => name.startsWith('svc-demo-'))).toEqual([])
  })
})
