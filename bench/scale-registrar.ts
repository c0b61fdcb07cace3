/**
 * The registering process of bench/scale.ts: one library process registers N instances over N/5 services, prints
 * `registered <ms>` and keeps them alive until stdin closes (or SIGTERM), then deregisters and exits.
 */
import {openRegistry} from '../src/lib/registry/index.js'
import {closeAll, registerMany} from '../test/helpers/scale.js'

const [uri, count] = process.argv.slice(2)
const n = Number(count)
const registry = await openRegistry(uri!)
const started = performance.now()
const handles = await registerMany(registry, n, 'scale')
process.stdout.write(`registered ${(performance.now() - started).toFixed(0)}\n`)
const stop = async (): Promise<void> => {
  await closeAll(handles)
  await registry.close()
  process.exit(0)
}

process.stdin.on('end', stop)
process.stdin.resume()
process.on('SIGTERM', stop)
