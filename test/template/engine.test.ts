import {describe, expect, it} from 'vitest'

import type {ServiceInstance} from '../../src/lib/registry/types.js'
import {createEngine, TemplateError} from '../../src/lib/template/engine.js'
import {ServiceState} from '../../src/lib/template/state.js'

const instance = (over: Partial<ServiceInstance> & {service: string; id: string}): ServiceInstance => ({
  address: '127.0.0.1',
  port: 80,
  tags: [],
  meta: {},
  health: 'passing',
  ...over,
})

function stateOf(...instances: ServiceInstance[]): ServiceState {
  const state = new ServiceState()
  state.apply({type: 'snapshot', instances})
  return state
}

const render = (source: string, state: ServiceState): string => createEngine().compile('t.hbs', source).render(state)

const compile = (source: string): unknown => createEngine().compile('up.hbs', source)

const WEB = [
  instance({service: 'web', id: 'w3', address: '10.0.0.10', port: 80, tags: ['v2'], meta: {zone: 'b'}}),
  instance({service: 'web', id: 'w1', address: '10.0.0.9', port: 81, tags: ['v1'], meta: {zone: 'a'}}),
  instance({service: 'web', id: 'w2', address: '10.0.0.9', port: 80, tags: ['v1', 'v2'], health: 'warning'}),
  instance({service: 'web', id: 'w4', address: '10.0.0.1', port: 80, health: 'critical'}),
  instance({service: 'api.v1', id: 'a1', address: '10.0.1.1', port: 90}),
]

/** The ids `service QUERY` lists, in order. */
const ids = (query: string): string => render(`{{#each (service ${query})}}{{id}} {{/each}}`, stateOf(...WEB)).trim()

describe('template helpers', () => {
  it('service: healthy instances (passing, warning) in a stable order by address, port, id', () => {
    const source = '{{#each (service "web")}}{{address}}:{{port}} {{id}}\n{{/each}}'
    expect(render(source, stateOf(...WEB))).toBe('10.0.0.9:80 w2\n10.0.0.9:81 w1\n10.0.0.10:80 w3\n')
    // the order does not depend on the order the registry listed them in
    expect(render(source, stateOf(...[...WEB].reverse()))).toBe(render(source, stateOf(...WEB)))
  })

  it('service: the health filter as "name|any", "name|critical" or health=', () => {
    expect(ids('"web|any"')).toBe('w4 w2 w1 w3')
    expect(ids('"web|critical"')).toBe('w4')
    expect(ids('"web" health="passing"')).toBe('w1 w3')
    expect(() => ids('"web|sick"')).toThrow(/t\.hbs:1: health "sick": write "any" or a comma list/)
  })

  it('service: by tag as "tag.name" (consul-template) or tag=, and a dotted service name read as one', () => {
    expect(ids('"v1.web"')).toBe('w2 w1')
    expect(ids('"web" tag="v2"')).toBe('w2 w3')
    expect(ids('"api.v1"')).toBe('a1')
    expect(ids('"v2.api.v1"')).toBe('')
    expect(ids('"nosuch"')).toBe('')
  })

  it('{{else}} of each is the fallback for a service without healthy instances', () => {
    // `}}}` would read as the end of a triple-stash: nginx's closing brace goes on a line of its own
    const source =
      'upstream x {\n{{#each (service "db")}}\n  server {{address}};\n{{else}}\n  server 127.0.0.1:1 down;\n{{/each}}\n}\n'
    expect(render(source, stateOf(...WEB))).toBe('upstream x {\n  server 127.0.0.1:1 down;\n}\n')
  })

  it('services: every service with instances, by name, with the union of their tags; tag= filters', () => {
    const source = '{{#each (services)}}{{name}} [{{join tags ","}}] {{healthy}}/{{instances}}\n{{/each}}'
    expect(render(source, stateOf(...WEB))).toBe('api.v1 [] 1/1\nweb [v1,v2] 3/4\n')
    expect(render('{{#each (services tag="v1")}}{{name}}{{/each}}', stateOf(...WEB))).toBe('web')
  })

  it('meta, default, sortBy, byTag, contains, eq, env, toJSON; no HTML escaping', () => {
    const state = stateOf(...WEB, instance({service: 'x', id: 'x1', meta: {path: '/a?b=1&c=<d>'}}))
    expect(render('{{#each (service "web")}}{{default meta.zone "-"}}{{/each}}', state)).toBe('-ab')
    expect(render('{{#each (sortBy (service "web") "meta.zone")}}{{id}}{{/each}}', state)).toBe('w2w1w3')
    expect(render('{{#each (sortBy (service "web|any") "port")}}{{port}} {{/each}}', state)).toBe('80 80 80 81 ')
    expect(render('{{#each (byTag (service "web"))}}{{@key}}={{#each this}}{{id}}{{/each}};{{/each}}', state)).toBe(
      'v1=w2w1;v2=w2w3;',
    )
    expect(render('{{#each (service "web")}}{{#if (contains tags "v2")}}{{id}}{{/if}}{{/each}}', state)).toBe('w2w3')
    expect(render('{{#each (service "web")}}{{#if (eq port 81)}}{{id}}{{/if}}{{/each}}', state)).toBe('w1')
    process.env.SVC_TEMPLATE_TEST = 'here'
    expect(render('{{env "SVC_TEMPLATE_TEST"}}{{env "SVC_TEMPLATE_UNSET"}}', state)).toBe('here')
    expect(render('{{#each (service "x")}}{{meta.path}} {{toJSON tags}}{{/each}}', state)).toBe('/a?b=1&c=<d> []')
  })

  it('a syntax error and an unknown helper fail at compile time, naming the file and line', () => {
    expect(() => compile('a\n{{#each (service "web")}}\nb\n')).toThrow(TemplateError)
    expect(() => compile('a\n{{#each (service "web")}}\nb\n')).toThrow(/^up\.hbs:4: parse error: Expecting/)
    expect(() => compile('a\n\n{{servce "web"}}')).toThrow(/^up\.hbs:3: .*unknown helper servce$/)
    expect(() => compile('{{#each x}}{{/if}}')).toThrow(/^up\.hbs:1: each doesn't match if$/)
  })

  it('a helper error at render time names the line of the call', () => {
    const compiled = createEngine().compile('r.hbs', 'a\nb\n{{#each (service "web")}}{{join port}}{{/each}}')
    expect(compiled.render(stateOf())).toBe('a\nb\n')
    expect(() => compiled.render(stateOf(...WEB))).toThrow(/^r\.hbs:3: join takes a list/)
  })
})
