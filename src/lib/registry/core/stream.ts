/** A push-to-pull queue: producers push, one consumer iterates; `end` or the consumer's `return` stops it. */
export class EventQueue<T> implements AsyncIterableIterator<T> {
  private readonly items: T[] = []
  private waiting?: {resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void}
  private done = false
  private failure?: unknown
  private readonly onClose: () => void

  constructor(onClose: () => void = () => {}) {
    this.onClose = onClose
  }

  get closed(): boolean {
    return this.done
  }

  push(item: T): void {
    if (this.done) return
    if (this.waiting) {
      const {resolve} = this.waiting
      this.waiting = undefined
      resolve({done: false, value: item})
    } else {
      this.items.push(item)
    }
  }

  /** Ends the stream; with an error, the consumer's next read throws it. */
  end(error?: unknown): void {
    if (this.done) return
    this.done = true
    this.failure = error
    if (this.waiting) {
      const {reject, resolve} = this.waiting
      this.waiting = undefined
      if (error === undefined) resolve({done: true, value: undefined})
      else reject(error)
    }

    this.onClose()
  }

  next(): Promise<IteratorResult<T>> {
    const item = this.items.shift()
    if (item !== undefined) return Promise.resolve({done: false, value: item})
    if (this.done) {
      if (this.failure !== undefined) {
        const error = this.failure
        this.failure = undefined
        return Promise.reject(error)
      }

      return Promise.resolve({done: true, value: undefined})
    }

    return new Promise((resolve, reject) => {
      this.waiting = {resolve, reject}
    })
  }

  return(): Promise<IteratorResult<T>> {
    this.items.length = 0
    this.end()
    return Promise.resolve({done: true, value: undefined})
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this
  }
}
