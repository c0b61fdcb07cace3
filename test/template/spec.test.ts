import {describe, expect, it} from 'vitest'

import {formatError} from '../../src/lib/errors.js'
import {type FlagToken, templateSpecs} from '../../src/lib/template/spec.js'

const tokens = (...pairs: Array<[string, string]>): FlagToken[] => pairs.map(([flag, input]) => ({flag, input}))

describe('templateSpecs', () => {
  it('--out and --exec belong to the --template before them', () => {
    expect(
      templateSpecs(
        tokens(
          ['template', 'a.hbs'],
          ['out', 'a.conf'],
          ['exec', 'reload a'],
          ['template', 'b.hbs'],
          ['out', 'b.conf'],
        ),
      ),
    ).toEqual([
      {source: 'a.hbs', out: 'a.conf', exec: 'reload a'},
      {source: 'b.hbs', out: 'b.conf'},
    ])
    // other flags in between change nothing
    expect(templateSpecs(tokens(['backend', 'etcd'], ['template', 'a'], ['debounce', '1s'], ['out', 'o']))).toEqual([
      {source: 'a', out: 'o'},
    ])
  })

  it("takes consul-template's IN:OUT[:CMD], the command being everything after the second colon", () => {
    expect(templateSpecs(tokens(['template', 'in.hbs:/etc/out.conf:nginx -s reload; echo a:b']))).toEqual([
      {source: 'in.hbs', out: '/etc/out.conf', exec: 'nginx -s reload; echo a:b'},
    ])
    expect(templateSpecs(tokens(['template', 'in.hbs:out.conf'], ['once', '']))).toEqual([
      {source: 'in.hbs', out: 'out.conf'},
    ])
  })

  it('refuses what cannot be paired, in one line naming both forms', () => {
    const forms = /give --template IN --out OUT \[--exec CMD\] per template, or --template IN:OUT\[:CMD\]/
    expect(() => templateSpecs(tokens(['out', 'x'], ['template', 'a']))).toThrow(/--out "x" comes before any/)
    expect(() => templateSpecs(tokens(['template', 'a']))).toThrow(/--template "a" has no --out/)
    expect(() => templateSpecs(tokens(['template', 'a'], ['out', 'x'], ['out', 'y']))).toThrow(/two --out for/)
    expect(() => templateSpecs(tokens(['template', 'a:x'], ['exec', 'c']))).toThrow(/names its output itself/)
    expect(() => templateSpecs(tokens(['template', 'a::c']))).toThrow(/is not IN:OUT\[:CMD\]/)
    expect(() => templateSpecs(tokens(['template', 'a:x'], ['template', 'b:./x']))).toThrow(/two templates render to/)
    for (const bad of [[], tokens(['template', 'a'])]) {
      let line = ''
      try {
        templateSpecs(bad)
      } catch (error) {
        line = formatError(error)
      }

      expect(line).toMatch(forms)
    }
  })
})
