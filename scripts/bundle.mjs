#!/usr/bin/env node
// Bundles the CLI (its entry, commands and hooks, with @oclif/core inside) into dist/cli/ with esbuild, so that
// start-up loads a handful of files instead of resolving and reading oclif's module graph (issue 17: the time of
// `svc resolve` went mostly to module loading). Lazy imports stay lazy: each becomes a chunk of its own. Every other
// dependency stays external and loads from node_modules as before. The library (dist/lib) is tsc's output, untouched.
import {build} from 'esbuild'
import {readFileSync} from 'node:fs'
import {readdir} from 'node:fs/promises'
import path from 'node:path'

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..')
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'))
const bundled = new Set(['@oclif/core'])
const external = Object.keys(pkg.dependencies ?? {})
  .filter((name) => !bundled.has(name))
  .flatMap((name) => [name, `${name}/*`])

async function sources(dir) {
  const entries = await readdir(path.join(root, dir), {recursive: true, withFileTypes: true})
  return entries
    .filter((e) => e.isFile() && /\.tsx?$/.test(e.name) && !e.name.endsWith('.d.ts'))
    .map((e) => path.join(e.parentPath, e.name))
}

await build({
  absWorkingDir: root,
  entryPoints: [path.join(root, 'src/cli.ts'), ...(await sources('src/commands')), ...(await sources('src/hooks'))],
  outbase: path.join(root, 'src'),
  outdir: path.join(root, 'dist/cli'),
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // oclif's TypeScript support (ts-node paths) is for development checkouts; a build never takes it
  external: [...external, 'typescript'],
  // oclif's dependencies are CommonJS and call require(); an ES module has none of its own
  banner: {
    js: "import {createRequire as __svcRequire} from 'node:module'; const require = __svcRequire(import.meta.url);",
  },
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  logLevel: 'warning',
})
