/**
 * Runs tasks of one key (a connection) one at a time, in submission order, while different keys run
 * concurrently. A task that returns synchronously costs no allocation; only keys with a pending promise
 * get a queue.
 */
export class KeyedSerializer {
  readonly #queues = new Map<string, Array<() => unknown>>();
  readonly #onError: (err: unknown, key: string) => void;

  constructor(onError: (err: unknown, key: string) => void) {
    this.#onError = onError;
  }

  /** Number of keys with work in flight. */
  get busy(): number {
    return this.#queues.size;
  }

  run(key: string, task: () => unknown): void {
    const queue = this.#queues.get(key);
    if (queue) {
      queue.push(task);
      return;
    }
    this.#start(key, task);
  }

  #start(key: string, task: () => unknown): void {
    let result: unknown;
    try {
      result = task();
    } catch (err) {
      this.#onError(err, key);
      return this.#next(key);
    }
    if (result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function') {
      // register a queue while the promise is pending so later work lines up behind it
      if (!this.#queues.has(key)) this.#queues.set(key, []);
      (result as PromiseLike<unknown>).then(
        () => this.#next(key),
        (err) => {
          this.#onError(err, key);
          this.#next(key);
        },
      );
    } else {
      this.#next(key);
    }
  }

  #next(key: string): void {
    const queue = this.#queues.get(key);
    if (!queue) return;
    const task = queue.shift();
    if (task === undefined) {
      this.#queues.delete(key);
      return;
    }
    this.#start(key, task);
  }
}
