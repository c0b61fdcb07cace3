import {EventEmitter} from 'node:events'

/** Fake stdin/stdout for mounting an ink app in a test: raw mode is recorded, keys are pressed with press(). */
export function fakeTerminal(columns = 100) {
  const stdout = Object.assign(new EventEmitter(), {
    columns,
    rows: 40,
    isTTY: true,
    output: '',
    write(chunk: string) {
      stdout.output += chunk
      return true
    },
  })
  const stdin = Object.assign(new EventEmitter(), {
    isTTY: true,
    rawMode: false,
    data: null as null | string,
    setRawMode(on: boolean) {
      stdin.rawMode = on
      return stdin
    },
    setEncoding() {},
    resume() {},
    pause() {},
    ref() {},
    unref() {},
    read() {
      const {data} = stdin
      stdin.data = null
      return data
    },
    press(data: string) {
      stdin.data = data
      stdin.emit('readable')
    },
  })
  return {stdin, stdout}
}
