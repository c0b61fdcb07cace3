import {describe, expect, it} from 'vitest'

import {renderTable} from '../../src/lib/render/table.js'

const head = ['SERVICE', 'INSTANCES', 'PASSING']
const rows = [['a-service-with-a-long-name', '3', '2']]

describe('renderTable', () => {
  it('draws borders on a terminal wide enough for them', async () => {
    const text = await renderTable(head, rows, true, 120)
    expect(text).toContain('┌')
  })

  it('falls back to plain columns when the terminal is too narrow for the borders', async () => {
    const text = await renderTable(head, rows, true, 40)
    expect(text).not.toMatch(/[┌│└]/)
    expect(text.split('\n')).toEqual([
      'SERVICE                     INSTANCES  PASSING',
      'a-service-with-a-long-name  3          2',
    ])
  })

  it('prints plain columns off a terminal', async () => {
    expect(await renderTable(head, rows, false, 200)).not.toContain('┌')
  })
})
