import {readdirSync, readFileSync} from 'node:fs'
import path from 'node:path'

import {ROOT} from './cli.js'

/** A fenced code block of a Markdown page: its info string and its lines. */
export interface CodeBlock {
  info: string
  lines: string[]
}

/** The README and every Markdown page under docs/, as paths relative to the repository. */
export function docPages(): string[] {
  const pages: string[] = ['README.md']
  const walk = (dir: string): void => {
    for (const entry of readdirSync(path.join(ROOT, dir), {withFileTypes: true})) {
      const rel = path.join(dir, entry.name)
      if (entry.isDirectory()) walk(rel)
      else if (entry.name.endsWith('.md')) pages.push(rel)
    }
  }

  walk('docs')
  return pages.sort()
}

export function readPage(page: string): string {
  return readFileSync(path.join(ROOT, page), 'utf8')
}

/** The fenced code blocks of a page (``` only, as the pages use). */
export function codeBlocks(text: string): CodeBlock[] {
  const blocks: CodeBlock[] = []
  let open: CodeBlock | undefined
  for (const line of text.split('\n')) {
    if (line.startsWith('```')) {
      if (open) {
        blocks.push(open)
        open = undefined
      } else open = {info: line.slice(3).trim(), lines: []}
    } else open?.lines.push(line)
  }

  return blocks
}

/** The page's prose: its text without the fenced code blocks. */
export function prose(text: string): string {
  return text.replaceAll(/^```[^\n]*\n[\s\S]*?^```$/gm, '')
}

/** The relative link targets of a page (no scheme, no bare #anchor), without their #anchor. */
export function relativeLinks(text: string): string[] {
  return [...prose(text).matchAll(/\]\(([^)\s]+)\)/g)]
    .map((m) => m[1]!)
    .filter((href) => !/^[a-z][a-z+.-]*:/i.test(href) && !href.startsWith('#'))
    .map((href) => href.split('#', 1)[0]!)
}

/** Splits a shell line into words: quotes group, a quote-less `#` after a space starts a comment. */
export function shellWords(line: string): string[] {
  const words: string[] = []
  let word: string | undefined
  let quote: string | undefined
  for (const c of line) {
    if (quote) {
      if (c === quote) quote = undefined
      else word = (word ?? '') + c
    } else if (c === '"' || c === "'") {
      quote = c
      word ??= ''
    } else if (c === ' ' || c === '\t') {
      if (word !== undefined) words.push(word)
      word = undefined
    } else if (c === '#' && word === undefined) {
      break
    } else word = (word ?? '') + c
  }

  if (word !== undefined) words.push(word)
  return words
}

const SHELL_OPERATORS = new Set(['2>', '2>&1', '&', '&&', ';', '<', '>', '>>', '|', '||'])

/** The arguments of the svc invocation a line of a code block holds (`$ svc ...`, `svc ...`, `npx svc ...`). */
export function svcInvocation(line: string): string[] | undefined {
  const words = shellWords(line.replace(/^\$ /, ''))
  while (words.length > 0 && /^[A-Z_][A-Z0-9_]*=/.test(words[0]!)) words.shift()
  if (words[0] === 'npx') words.shift()
  if (words[0] !== 'svc') return undefined
  const args: string[] = []
  for (const word of words.slice(1)) {
    if (SHELL_OPERATORS.has(word) || /^\d?>/.test(word)) break
    args.push(word)
  }

  return args
}

/** The svc invocations a page quotes: command lines of its code blocks and inline code that starts with `svc `. */
export function quotedInvocations(text: string): Array<{quote: string; args: string[]}> {
  const found: Array<{quote: string; args: string[]}> = []
  for (const block of codeBlocks(text)) {
    for (const line of block.lines) {
      // captures quote commands indented too (svc demo prints the command each step stands for)
      const shellLike = line.trimStart().startsWith('$ ') || /^(sh|bash|console)$/.test(block.info)
      const args = shellLike ? svcInvocation(line.trimStart()) : undefined
      if (args) found.push({quote: line, args})
    }
  }

  for (const match of prose(text).matchAll(/`(svc [^`]+)`/g)) {
    const args = svcInvocation(match[1]!.replaceAll(/[[\]]|\.\.\./g, ' '))
    if (args) found.push({quote: match[1]!, args})
  }

  return found
}
